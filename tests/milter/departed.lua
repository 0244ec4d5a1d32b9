-- departed.lua - with the sample directory and [archive] scope = departments:
-- a departed employee seen by envelope sender, header From and SASL login
-- (flagged, journalled, and refused: departed-sender's built-in action is
-- reject, 550 5.7.1); mail to that employee routed to the successor; a newsletter to management (not archived); sales
-- mail (archived, nothing flagged).
dofile(dir .. "/lib.lua")

-- MAIL FROM .. EOH with our own macros and From header.
local function start(conn, qid, auth, from, rcpt, hfrom)
	if auth ~= nil then
		mt.macro(conn, SMFIC_MAIL, "i", qid, "{auth_authen}", auth)
	else
		mt.macro(conn, SMFIC_MAIL, "i", qid)
	end
	step(conn, qid .. " mailfrom", mt.mailfrom(conn, "<" .. from .. ">"), SMFIR_CONTINUE)
	step(conn, qid .. " rcptto", mt.rcptto(conn, "<" .. rcpt .. ">"), SMFIR_CONTINUE)
	step(conn, qid .. " data", mt.data(conn), SMFIR_CONTINUE)
	step(conn, qid .. " From", mt.header(conn, "From", hfrom), SMFIR_CONTINUE)
	step(conn, qid .. " Subject", mt.header(conn, "Subject", qid), SMFIR_CONTINUE)
	step(conn, qid .. " eoh", mt.eoh(conn), SMFIR_CONTINUE)
	step(conn, qid .. " body", mt.bodystring(conn, "text of " .. qid .. "\r\n"), SMFIR_CONTINUE)
end

-- EOM refused with our 550 5.7.1, nothing added.
local function refused(conn, what)
	step(conn, what .. " eom", mt.eom(conn), SMFIR_REPLYCODE)
	check(not mt.eom_check(conn, MT_HDRINSERT, "X-Custos-Archive"), what .. " was tagged")
end

local conn = open()
start(conn, "DEP1", nil, "chen.jie@corp.example", "buyer@acme.example", "chen.jie@corp.example")
refused(conn, "DEP1")
start(conn, "DEP2", nil, "li.na@corp.example", "buyer@acme.example",
      "=?UTF-8?B?6ZmI5p2w?= <Chen.Jie@corp.example>")
refused(conn, "DEP2")
start(conn, "DEP3", "chen.jie", "li.na@corp.example", "buyer@acme.example", "li.na@corp.example")
refused(conn, "DEP3")
start(conn, "NEWS1", nil, "news@vendor.example", "zhao.gang@corp.example", "news@vendor.example")
step(conn, "NEWS1 eom", mt.eom(conn), SMFIR_CONTINUE)
check(not mt.eom_check(conn, MT_HDRINSERT, "X-Custos-Archive"), "NEWS1 was tagged as archived")
start(conn, "SALES1", nil, "buyer@acme.example", "li.na@corp.example", "buyer@acme.example")
finish(conn, "SALES1")
-- mail for the departed employee: to the successor instead ([route]), the
-- leaver kept in a header; archived (a route is recorded)
start(conn, "ROUTE1", nil, "buyer@acme.example", "chen.jie@corp.example", "buyer@acme.example")
step(conn, "ROUTE1 eom", mt.eom(conn), SMFIR_CONTINUE)
check(mt.eom_check(conn, MT_RCPTDELETE, "chen.jie@corp.example"), "ROUTE1: the leaver not removed")
check(mt.eom_check(conn, MT_RCPTADD, "<li.na@corp.example>"), "ROUTE1: the successor not added")
check(mt.eom_check(conn, MT_HDRINSERT, "X-Custos-Original-To"), "ROUTE1: no X-Custos-Original-To")
check(mt.eom_check(conn, MT_HDRINSERT, "X-Custos-Archive"), "ROUTE1: not archived")
mt.disconnect(conn)
