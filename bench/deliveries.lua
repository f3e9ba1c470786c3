-- wrk script: signed orders/create deliveries, each with a new X-Genstore-Event-Id.
-- The HMAC covers the body only, so one body and its signature serve every request.
-- Arguments (after --): body file, base64 signature, event id prefix.

local body, prefix
local counter = 0
local headers = {}

function setup(thread)
  thread:set("thread_index", tostring(setup_count or 0))
  setup_count = (setup_count or 0) + 1
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  prefix = args[3] .. "-" .. (thread_index or "0") .. "-"
  headers["Content-Type"] = "application/json"
  headers["X-Genstore-Topic"] = "orders/create"
  headers["X-Genstore-Shop-Domain"] = "bench.genmystore.com"
  headers["X-Genstore-Hmac-Sha256"] = args[2]
end

function request()
  counter = counter + 1
  headers["X-Genstore-Event-Id"] = prefix .. counter
  return wrk.format("POST", "/webhooks/genstore", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
