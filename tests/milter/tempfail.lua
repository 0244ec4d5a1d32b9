-- tempfail.lua - the spool cannot be written: 451 4.3.0 at DATA.
dofile(dir .. "/lib.lua")
local conn = open()
mt.macro(conn, SMFIC_MAIL, "i", "FAIL1")
step(conn, "mailfrom", mt.mailfrom(conn, "<a@example.com>"), SMFIR_CONTINUE)
step(conn, "rcptto", mt.rcptto(conn, "<b@example.org>"), SMFIR_CONTINUE)
check(mt.data(conn) == nil, "data failed")
check(mt.getreply(conn) == SMFIR_REPLYCODE, "data: expected a reply code (451)")
mt.disconnect(conn)
