-- SEND_MESSAGE. ARGV: history, name, channel, text. Returns {'ok', seq} or {'not-member'}
-- (removed by a KICK or BAN the sender's server had not applied yet).
local ch = ARGV[3]
local v = redis.call('HGET', ckey(ch, 'member'), string.lower(ARGV[2]))
if not v then return {'not-member'} end
local _, _, name = parse(v)
return {'ok', append(ch, CHAT, name, ARGV[4], '', '', '', 0)}
