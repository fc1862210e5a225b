-- NAMES. ARGV: history, channel. Returns {flags, name, flags, name, ...} in join order
-- (flags 'o-', '-p', ...); empty when the channel is not open.
local ch = ARGV[2]
local members = ckey(ch, 'member')
local out = {}
for _, lower in ipairs(redis.call('ZRANGE', ckey(ch, 'order'), 0, -1)) do
  local v = redis.call('HGET', members, lower)
  if v then
    local flags, _, name = parse(v)
    table.insert(out, flags)
    table.insert(out, name)
  end
end
return out
