"""`medclass audit`."""
