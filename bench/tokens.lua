-- wrk script of bench.loadgen: every request carries the next token of the file named after
-- "--" (one per line), so each is sent once; when the file is used up the thread stops (at
-- most one request per connection is then in flight and repeats a token already sent).
local tokens, count, sent = {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    count = count + 1
    tokens[count] = line
  end
end

function request()
  sent = sent + 1
  local index = sent <= count and sent or count
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[index] })
end

function response(status, headers, body)
  if sent >= count then
    wrk.thread:stop()
  end
end
