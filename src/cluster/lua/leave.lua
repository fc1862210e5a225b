-- LEAVE_CHANNEL or a closed connection. ARGV: history, name, channel. Returns 1 or 0.
local lower = string.lower(ARGV[2])
if depart(ARGV[3], lower, NOTICE, left, '', '', 0) then return 1 end
return 0
