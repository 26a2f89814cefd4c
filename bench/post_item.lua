wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "widget", "price": 9.5, "tags": ["a", "b"], "quantity": 3}'
