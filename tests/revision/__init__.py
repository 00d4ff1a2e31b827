"""Tests for engine.revision and engine.host.archive."""
