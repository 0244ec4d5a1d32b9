-- huge.lua - a body of mb megabytes (-D mb=N, 1 MB = 16 chunks of 64512 bytes:
-- the milter protocol takes at most 65535 in one), archived whole.
dofile(dir .. "/lib.lua")
local conn = open()
message(conn, "HUGE1", "big@example.com", { "b@example.org" }, "huge")
local line = string.rep("0123456789abcdef", 63) .. "xxxxxxxxxxxxxx\r\n"   -- 1024 bytes
local chunk = string.rep(line, 63)
for i = 1, mb * 16 do
	step(conn, "body chunk " .. i, mt.bodystring(conn, chunk), SMFIR_CONTINUE)
end
finish(conn, "huge")
mt.disconnect(conn)
