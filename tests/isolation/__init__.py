"""The isolation matrix's machinery (tests/test_isolation_matrix.py): the rules of
what it leaves out and allows (rules), the world of two tenants (world), the routes and
their fills (routes), the requests and checks (matrix)."""
