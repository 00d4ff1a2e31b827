"""Renderers of the engine's event stream for the command line: plain lines, live, JSON."""
