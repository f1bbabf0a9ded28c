"""Screens of the compute app, a module per audience: the company (`company`, /my/…), the
data center's operators (`operator`, /dc/…) and the city's staff (`staff`,
/<city>/staff/…); `common` holds what they share."""
