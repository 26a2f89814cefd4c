-- wrk script: POST a 1 MiB body (1048576 bytes of "a") to the echo app.
-- wrk adds the Content-Length header itself when wrk.body is set.
wrk.method = "POST"
wrk.body = string.rep("a", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
