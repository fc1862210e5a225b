-- JOIN_CHANNEL. ARGV: history, node, name, channel, from ('' for none), push ('1'/'0').
-- Returns {'banned'} or {'joined', seq}.
local node, name, ch, from, push = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local lower = string.lower(name)
if redis.call('SISMEMBER', ckey(ch, 'bans'), lower) == 1 then return {'banned'} end
if from ~= '' then depart(from, lower, NOTICE, left, '', '', 0, node) end
-- A stale membership of this very channel (after a reconnect) is replaced, not doubled.
depart(ch, lower, NOTICE, left, '', '', 0)
return {'joined', enter(ch, lower, name, node, push)}
