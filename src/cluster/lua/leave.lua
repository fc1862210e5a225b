-- LEAVE_CHANNEL or a closed connection. ARGV: history, node, name, channel. Only a member
-- through that node leaves: a name another node's client took meanwhile is not touched.
-- Returns 1 or 0.
local lower = string.lower(ARGV[3])
if depart(ARGV[4], lower, NOTICE, left, '', '', 0, ARGV[2]) then return 1 end
return 0
