"""The `esper` command: train controllers, evaluate them, look at runs."""
