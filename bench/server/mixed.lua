-- mixed.lua: the wrk script of bench/server (see load.c).
--
--   wrk -t1 -c16 -d3s -s mixed.lua http://127.0.0.1:PORT/ -- N PCT
--
-- Each request is GET /fib/N with probability PCT % (0 = /ping only), else
-- GET /ping.  At the end it prints one line that load parses:
--   WRK_JSON {"requests":..,"duration_us":..,"lat_p99_us":.., ...}
-- Latencies are over all requests (wrk cannot tell them apart), in us.

local fib_req, ping_req, pct

function init(args)
  local n = tonumber(args[1]) or 30
  pct = tonumber(args[2]) or 10
  fib_req = wrk.format("GET", "/fib/" .. n)
  ping_req = wrk.format("GET", "/ping")
end

function request()
  if pct > 0 and math.random(100) <= pct then
    return fib_req
  end
  return ping_req
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"lat_mean_us":%.1f,"lat_max_us":%d,"lat_p50_us":%d,"lat_p90_us":%d,' ..
    '"lat_p99_us":%d,"lat_p999_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
