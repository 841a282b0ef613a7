"""The shop's read models, one module each with its tables, handlers, row types
and queries; ``lines`` holds the line tables that carts and orders share, and
``catalog`` lists all of them."""
