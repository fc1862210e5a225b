-- LIST_CHANNELS. ARGV: history. Returns {name, members, retained, ...} of every open
-- channel in ascending byte order; retained is what a server's ring holds of it.
local out = {}
for _, ch in ipairs(redis.call('ZRANGE', P .. 'channels', 0, -1)) do
  table.insert(out, ch)
  table.insert(out, redis.call('ZCARD', ckey(ch, 'order')))
  table.insert(out, math.min(redis.call('XLEN', ckey(ch, 'log')), HISTORY))
end
return out
