"""`medclass split`."""
