"""Small helpers shared by the worker's domains (crypto, time, locks)."""
