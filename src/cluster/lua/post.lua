-- SEND_MESSAGE. ARGV: history, node, name, channel, text. Returns {'ok', seq}, or
-- {'not-member'} when the sender is not a member through that node (removed by a KICK or
-- BAN its server had not applied yet, or its name is another node's client's now).
local node, ch = ARGV[2], ARGV[4]
local v = redis.call('HGET', ckey(ch, 'member'), string.lower(ARGV[3]))
if not v then return {'not-member'} end
local _, owner, name = parse(v)
if owner ~= node then return {'not-member'} end
return {'ok', append(ch, CHAT, name, ARGV[5], '', '', '', 0)}
