-- lib.lua - helpers for the custos-milter miltertest scripts (dofile'd).
-- Variables from the test (miltertest -D): sock, the milter's socket.

function check(ok, what)
	if not ok then
		error(what)
	end
end

-- A call that must succeed and get the expected reply.
function step(conn, what, rc, want)
	check(rc == nil, what .. ": " .. tostring(rc))
	local r = mt.getreply(conn)
	check(r == want, what .. ": reply " .. tostring(r) .. ", expected " .. tostring(want))
end

function open()
	local conn = mt.connect(sock, 40, 0.05)
	check(conn ~= nil, "mt.connect(" .. sock .. ") failed")
	step(conn, "conninfo", mt.conninfo(conn, "mx.example", "192.0.2.7"), SMFIR_CONTINUE)
	-- no HELO: custos-milter asks not to get it (SMFIP_NOHELO), and then
	-- miltertest refuses to send one
	return conn
end

-- One message up to (not including) EOM; qid nil: no "i" macro.
function message(conn, qid, from, rcpts, subject)
	if qid ~= nil then
		mt.macro(conn, SMFIC_MAIL, "i", qid, "{auth_authen}", "alice")
	end
	step(conn, "mailfrom", mt.mailfrom(conn, "<" .. from .. ">"), SMFIR_CONTINUE)
	for _, r in ipairs(rcpts) do
		step(conn, "rcptto " .. r, mt.rcptto(conn, "<" .. r .. ">"), SMFIR_CONTINUE)
	end
	step(conn, "data", mt.data(conn), SMFIR_CONTINUE)
	step(conn, "header From", mt.header(conn, "From", from), SMFIR_CONTINUE)
	step(conn, "header Subject", mt.header(conn, "Subject", subject), SMFIR_CONTINUE)
	step(conn, "eoh", mt.eoh(conn), SMFIR_CONTINUE)
end

-- EOM, accepted and tagged.
function finish(conn, what)
	step(conn, what .. " eom", mt.eom(conn), SMFIR_CONTINUE)
	check(mt.eom_check(conn, MT_HDRINSERT, "X-Custos-Archive"),
	      what .. ": no X-Custos-Archive header inserted")
end
