def test_healthz(server):
    import httpx

    assert httpx.get(server.root + "/healthz").json() == {"success": True}
    assert httpx.get(server.url + "/healthz").json() == {"success": True}


def test_course_fixture(api, course):
    assert course in api("stu1").get("courses").json()["courses"]
