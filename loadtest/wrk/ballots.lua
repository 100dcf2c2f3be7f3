-- wrk script of the benchmark: each request is a fresh voter's ballot.
--   wrk -t N -s ballots.lua URL -- PATH TOKENS CANDIDATES CHOICES OUT N
-- PATH: the ballots path; TOKENS: a file of voter credentials, one a line, each used once
-- (thread k of n takes lines k, k+n, ...); CANDIDATES: candidate ids, comma-separated;
-- CHOICES: how many distinct ones a ballot chooses; OUT: a file prefix: thread k appends the
-- body of every 201 answer to OUT.k (one a line) and writes its status counts to OUT.k.status.
-- N: wrk's thread count (-t); a 7th argument "form" sends the peer's form POST vote=a instead.
-- Every request has its own Idempotency-Key. When the credentials run out, requests go
-- without one (answered 401) and are counted apart by the status.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  path, token_file, out_prefix = args[1], args[2], args[5]
  nchoices = tonumber(args[4])
  form = args[7] == "form"
  candidates = {}
  for c in string.gmatch(args[3], "[^,]+") do table.insert(candidates, tonumber(c)) end
  tokens = {}
  local n, line_no = tonumber(args[6] or 1), 0
  for line in io.lines(token_file) do
    if line_no % n == id then table.insert(tokens, line) end
    line_no = line_no + 1
  end
  next_token = 1
  statuses = {}
  out = io.open(out_prefix .. "." .. id, "w")
  out:setvbuf("line")
  math.randomseed(os.time() + id * 7919)
end

local function body()
  -- a random choice of nchoices distinct candidates (partial Fisher-Yates)
  local pool = {}
  for i = 1, #candidates do pool[i] = candidates[i] end
  local picked = {}
  for i = 1, nchoices do
    local j = math.random(i, #pool)
    pool[i], pool[j] = pool[j], pool[i]
    picked[i] = pool[i]
  end
  return '{"choices":[' .. table.concat(picked, ",") .. ']}'
end

function request()
  if form then
    return wrk.format("POST", path, { ["Content-Type"] = "application/x-www-form-urlencoded" }, "vote=a")
  end
  local token = tokens[next_token]
  next_token = next_token + 1
  -- each ballot from another /24, as behind the proxy (the benchmark trusts 127.0.0.1), so the
  -- per-network rules see citizens, not one flood
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = string.format("%d.%d.%d.%d", math.random(1, 223), math.random(0, 255),
      math.random(0, 255), math.random(1, 254)),
  }
  if token then
    headers["Authorization"] = "Bearer " .. token
    headers["Idempotency-Key"] = "w" .. id .. "-" .. next_token
  end
  return wrk.format("POST", path, headers, body())
end

function response(status, headers, resp)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then out:write(resp, "\n") end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local f = io.open(t:get("out_prefix") .. "." .. t:get("id") .. ".status", "w")
    for status, n in pairs(t:get("statuses")) do f:write(status, " ", n, "\n") end
    f:close()
  end
  io.write(string.format("latency_us p50=%d p90=%d p99=%d max=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
