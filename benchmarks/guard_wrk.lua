-- wrk script for benchmarks/guard.py: POST /v1/guard at a fixed pace per connection.
-- Arguments after "--": a file of request bodies (one JSON event a line) and the mean
-- pause in milliseconds between one connection's reply and its next request. Pauses
-- are drawn uniformly in [0, 2 * mean] (whole milliseconds, wrk's unit): equal pauses
-- keep connections that started together in step, and the load would come in bursts.
-- With many connections and replies much shorter than the pause, the total rate is
-- close to connections * 1000 / mean whatever the replies do.

local bodies = {}
local pause = 10
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  pause = tonumber(args[2])
  math.randomseed(7)
  i = math.random(#bodies)
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/guard", {["Content-Type"] = "application/json"}, bodies[i])
end

function delay()
  return math.random(0, math.floor(2 * pause + 0.5))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "max_us": %d, "errors": %d, "not_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout, e.status))
end
