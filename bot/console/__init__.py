"""The agent console and admin pages, served by the gateway under /console."""
