"""Tests for engine.revision and the bundle modules of engine.host."""
