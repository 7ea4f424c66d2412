from tests.conftest import body


def test_submit_run_and_read_back(env, http):
    resp = http.post("/v1/jobs", {"service": "echo", "input": {"hello": "world"}})
    assert resp.status_code == 202, resp.body
    job = body(resp)
    assert job["status"] == "queued"
    assert resp.headers["Location"] == f"https://jobs.example.com/v1/jobs/{job['jobId']}"
    assert env.run_queue() == 1
    done = body(http.get(f"/v1/jobs/{job['jobId']}"))
    assert done["status"] == "succeeded", done
    assert done["resultType"] == "application/json"
    key = env.rt.store.get("acme", job["jobId"], 0).result_key
    assert env.rt.blobs.get(key) == b'{"hello":"world"}'
