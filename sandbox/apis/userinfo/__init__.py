"""The Userinfo API: what a user shared with a sales unit (profile sharing), by sub."""
