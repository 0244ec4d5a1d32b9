-- macros.lua - no macros at all (no queue id, no SASL login), no client
-- address: still archived and tagged.
dofile(dir .. "/lib.lua")
local conn = mt.connect(sock, 40, 0.05)
check(conn ~= nil, "mt.connect failed")
step(conn, "conninfo", mt.conninfo(conn, "unknown", "unspec"), SMFIR_CONTINUE)
message(conn, nil, "", { "nomacro@example.org" }, "no macros")
step(conn, "body", mt.bodystring(conn, "no macros\r\n"), SMFIR_CONTINUE)
finish(conn, "no macros")
mt.disconnect(conn)
