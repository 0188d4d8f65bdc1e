"""Activity Insights for Zoom: everything that talks to Zoom or writes Zoom data."""
