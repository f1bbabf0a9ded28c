"""The form fuzzer's catalogue (tests/portal/test_form_fuzz.py): the values a field may take
(values), the forms of companies and applicants (catalogue), of city staff (staff_forms) and
of vouchers, redemptions, data centers and settlements (compute_forms)."""
