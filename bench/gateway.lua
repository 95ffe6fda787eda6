-- wrk script of bench/gateway.sh: lookups against mimi-gateway.
--
--   wrk ... -s bench/gateway.lua URL -- MODE SIIFILE THREADS [BATCH]
--
-- MODE:
--   get-cycle   GET /v1/lookup?sii=… cycling through the SIIs of SIIFILE
--   get-fresh   GET /v1/lookup?sii=… with SIIs never asked before in this
--               run (userK@example.com, K counting up across threads; one
--               in ten nobodyK@example.com, not in the zone)
--   post-cycle  POST /v1/lookup {"siis": [...]} with the SIIs of SIIFILE
--   post-fresh  POST /v1/lookup with BATCH SIIs never asked before each
-- THREADS is wrk's -t (each thread takes every THREADS-th SII).

local tid_counter = 0

function setup(thread)
  thread:set("tid", tid_counter)
  tid_counter = tid_counter + 1
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function fresh(k)
  if k % 10 == 9 then
    return "nobody" .. k .. "@example.com"
  end
  return "user" .. k .. "@example.com"
end

local function batch_body(list)
  local quoted = {}
  for i, s in ipairs(list) do
    quoted[i] = '"' .. s:gsub('[\\"]', "\\%0") .. '"'
  end
  return '{"siis":[' .. table.concat(quoted, ",") .. "]}"
end

function init(args)
  mode = args[1]
  siis = {}
  for line in io.lines(args[2]) do
    if #line > 0 then siis[#siis + 1] = line end
  end
  step = tonumber(args[3])
  batch = tonumber(args[4] or "500")
  i = tid
  if mode == "post-cycle" then
    body = batch_body(siis)
  end
end

function request()
  if mode == "get-cycle" then
    local s = siis[(i % #siis) + 1]
    i = i + step
    return wrk.format("GET", "/v1/lookup?sii=" .. urlencode(s))
  elseif mode == "get-fresh" then
    local s = fresh(i)
    i = i + step
    return wrk.format("GET", "/v1/lookup?sii=" .. urlencode(s))
  elseif mode == "post-cycle" then
    return wrk.format("POST", "/v1/lookup", { ["Content-Type"] = "application/json" }, body)
  elseif mode == "post-fresh" then
    local list = {}
    for j = 1, batch do
      list[j] = fresh(i * batch + j - 1)
    end
    i = i + step
    return wrk.format("POST", "/v1/lookup", { ["Content-Type"] = "application/json" }, batch_body(list))
  end
  error("unknown mode " .. tostring(mode))
end
