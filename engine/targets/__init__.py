"""deploydeck."""
