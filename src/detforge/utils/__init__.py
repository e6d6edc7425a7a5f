"""Small shared helpers with no detforge dependencies."""
