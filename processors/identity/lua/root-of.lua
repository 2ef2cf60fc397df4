-- root-of: current root of each global id (retired ids follow their parent pointers, which are path-compressed here).
-- ARGV: 1 base, 2.. global ids. Returns root or '' (never created) per id, in argument order.
local reply = {}
for i = 2, #ARGV do
  reply[#reply + 1] = findRoot(ARGV[i], true) or ''
end
return reply
