"""Bundled scenarios (scenarios/*.yaml), installed as package data so `vipps-sandbox scenario list` finds them."""
