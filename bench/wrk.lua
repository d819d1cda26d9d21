-- wrk script for the benchmark (bench/run.py): rotates through prepared requests and prints the
-- result as one JSON line.
--
--   wrk -t T -c C -d D -s bench/wrk.lua http://127.0.0.1:PORT -- REQUESTS_FILE T
--
-- REQUESTS_FILE has one request per line, tab-separated: METHOD, PATH, access token (or
-- `cookie=<Cookie header>` for a console page), optional JSON body (or `inm=<ETag>`: a conditional GET
-- sending If-None-Match). Thread k (0-based) takes lines k, k+T, k+2T, ... so that no two threads send the same line
-- (each acknowledgement pair is used once), and cycles through its share if the run outlasts it.
-- With fewer lines than threads, every thread sends every line.

local requests, position = {}, 0

function setup(thread)
   thread:set("thread_index", setup_count or 0)
   setup_count = (setup_count or 0) + 1
end

function init(args)
   local path, threads = args[1], tonumber(args[2])
   local index = thread_index or 0
   local lines = {}
   for line in io.lines(path) do lines[#lines + 1] = line end
   if #lines == 0 then error("no requests in " .. path) end
   for i, line in ipairs(lines) do
      -- fewer lines than threads: every thread sends them all
      if #lines < threads or (i - 1) % threads == index then
         local fields = {}
         for field in string.gmatch(line, "[^\t]+") do fields[#fields + 1] = field end
         local headers
         if string.sub(fields[3], 1, 7) == "cookie=" then
            headers = {["Cookie"] = string.sub(fields[3], 8), ["Accept"] = "text/html"}
         else
            headers = {["Authorization"] = "Bearer " .. fields[3], ["Accept"] = "application/json"}
         end
         local body = fields[4]
         if body and string.sub(body, 1, 4) == "inm=" then
            -- a conditional GET: If-None-Match with the tag, no body
            headers["If-None-Match"] = string.sub(body, 5)
            body = nil
         end
         if body then headers["Content-Type"] = "application/json" end
         requests[#requests + 1] = wrk.format(fields[1], fields[2], headers, body)
      end
   end
end

function request()
   position = position % #requests + 1
   return requests[position]
end

function done(summary, latency, requests_stats)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "seconds": %.3f, "rps": %.2f, "ok_rps": %.2f, ' ..
      '"median_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
      '"errors": {"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
      summary.requests, seconds, summary.requests / seconds, (summary.requests - e.status) / seconds,
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
