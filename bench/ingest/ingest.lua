-- wrk script for bench/ingest: replays pre-generated, pre-signed Pawoon webhooks.
--
-- Usage: wrk ... -s ingest.lua URL -- REQUESTS_FILE THREADS
--
-- REQUESTS_FILE holds one request per line, `path<TAB>signature<TAB>body`. Thread k of THREADS
-- takes lines k, k+THREADS, k+2*THREADS, ... so no two threads send the same transaction, and
-- formats all of its requests in `init`, before the clock starts; `request()` then only hands out
-- the next ready string. A thread that runs out starts over (its requests then become
-- duplicates, which the summary reports as `wrapped`).
--
-- `done` prints one line, `WRK_RESULT {json}`, that run.py parses: throughput, latency
-- percentiles (microseconds), socket errors, and per-status counts. `fresh` counts the 200s whose
-- body says `"duplicate": false`, i.e. the records the server says it newly committed. `sent`
-- minus `requests` bounds what was in flight when wrk stopped (wrk also asks thread 0 for one
-- request at start-up, to check the script, and never sends it).

local threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path, thread_count = args[1], tonumber(args[2])
   prepared = {}
   local line_number = 0
   for line in io.lines(path) do
      if line_number % thread_count == thread_index then
         local target, signature, body = line:match("^([^\t]+)\t([^\t]+)\t(.+)$")
         prepared[#prepared + 1] = wrk.format("POST", target, {
            ["Content-Type"] = "application/json",
            ["X-Webhook-Signature"] = signature,
         }, body)
      end
      line_number = line_number + 1
   end
   if #prepared == 0 then
      error("no requests for thread " .. thread_index .. " in " .. path)
   end
   available = #prepared
   cursor = 0
   sent = 0
   fresh = 0
   statuses = {}
end

function request()
   cursor = cursor % #prepared + 1
   sent = sent + 1
   return prepared[cursor]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 200 and body and body:find('"duplicate":%s*false') then
      fresh = fresh + 1
   end
end

function done(summary, latency, requests)
   local sent_total, fresh_total, unique_total, wrapped = 0, 0, 0, false
   local status_totals = {}
   for _, thread in ipairs(threads) do
      local thread_sent = thread:get("sent")
      local available = thread:get("available")
      sent_total = sent_total + thread_sent
      unique_total = unique_total + math.min(thread_sent, available)
      wrapped = wrapped or thread_sent > available
      fresh_total = fresh_total + thread:get("fresh")
      for status, count in pairs(thread:get("statuses")) do
         status_totals[status] = (status_totals[status] or 0) + count
      end
   end

   local status_json = {}
   for status, count in pairs(status_totals) do
      status_json[#status_json + 1] = string.format('"%d": %d', status, count)
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, ' ..
      '"p50": %d, "p90": %d, "p99": %d, "p99.9": %d}, ' ..
      '"sent": %d, "unique_sent": %d, "wrapped": %s, "fresh": %d, "statuses": {%s}}\n',
      summary.duration, summary.requests, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9),
      sent_total, unique_total, tostring(wrapped), fresh_total, table.concat(status_json, ", ")))
end
