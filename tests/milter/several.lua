-- several.lua - five messages on one connection, each archived with its
-- own envelope; a sixth started and replaced by a new MAIL FROM.
dofile(dir .. "/lib.lua")
local conn = open()
for i = 1, 5 do
	local rcpts = {}
	for k = 1, i do
		rcpts[k] = "r" .. k .. "@example.org"
	end
	message(conn, "MULTI" .. i, "s" .. i .. "@example.com", rcpts, "message " .. i)
	step(conn, "body", mt.bodystring(conn, "body of message " .. i .. "\r\n"), SMFIR_CONTINUE)
	finish(conn, "message " .. i)
end
-- started, never finished: the next MAIL FROM drops it
mt.macro(conn, SMFIC_MAIL, "i", "UNFINISHED")
step(conn, "mailfrom", mt.mailfrom(conn, "<x@example.com>"), SMFIR_CONTINUE)
step(conn, "rcptto", mt.rcptto(conn, "<y@example.org>"), SMFIR_CONTINUE)
message(conn, "MULTI6", "s6@example.com", { "r1@example.org" }, "message 6")
step(conn, "body", mt.bodystring(conn, "body of message 6\r\n"), SMFIR_CONTINUE)
finish(conn, "message 6")
mt.disconnect(conn)
