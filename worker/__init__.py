"""Activity Insights for Zoom: the worker side (everything that talks to Zoom or writes Zoom data)."""
