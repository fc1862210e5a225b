-- A server starts (or restarts) its copy of a channel. ARGV: history, channel, the
-- sequence number the server expects next (0: none). The channel's counter is raised to
-- it first, so that after Redis lost its data no number is given twice. Returns
-- {last sequence number given, entries newest first (XREVRANGE, at most history)}.
local ch, expected = ARGV[2], tonumber(ARGV[3])
local meta = ckey(ch, 'meta')
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
if expected - 1 > seq then
  seq = expected - 1
  redis.call('HSET', meta, 'seq', string.format('%d', seq))
end
return {seq, redis.call('XREVRANGE', ckey(ch, 'log'), '+', '-', 'COUNT', HISTORY)}
