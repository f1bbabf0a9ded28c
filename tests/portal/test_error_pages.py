def test_404_page_reveals_nothing_internal(client, db):
    response = client.get("/no-such-city/staff/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Traceback" not in body and "urlpatterns" not in body


def test_500_handler_renders_a_plain_page(rf):
    from portal.views import error_500

    response = error_500(rf.get("/"))
    assert response.status_code == 500
    assert "Traceback" not in response.content.decode()
