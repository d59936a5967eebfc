"""The app's pages (one file each) and what they share (_shared.py); see app.py."""
