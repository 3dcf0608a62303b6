"""The dashboard's static files (index.html, dashboard.css, dashboard.js) and the feeds they read."""
