"""The built-in task handlers; ``hmacfs.composition`` lists them."""
