-- abort.lua - a message aborted mid-body leaves nothing; the next one on
-- the same connection is archived; a connection dropped mid-body too.
dofile(dir .. "/lib.lua")
local conn = open()
message(conn, "ABORT1", "a@example.com", { "b@example.org" }, "aborted")
step(conn, "body", mt.bodystring(conn, "first half of the body\r\n"), SMFIR_CONTINUE)
check(mt.abort(conn) == nil, "abort failed")
message(conn, "KEPT1", "a@example.com", { "b@example.org" }, "kept after an abort")
step(conn, "body", mt.bodystring(conn, "whole body\r\n"), SMFIR_CONTINUE)
finish(conn, "after abort")
mt.disconnect(conn)
-- dropped without a word in the middle of the body
conn = open()
message(conn, "DROPPED1", "a@example.com", { "b@example.org" }, "dropped")
step(conn, "body", mt.bodystring(conn, "half\r\n"), SMFIR_CONTINUE)
mt.disconnect(conn, false)
