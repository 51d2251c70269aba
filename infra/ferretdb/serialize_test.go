package main

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/FerretDB/wire/wirebson"
)

func raw(t *testing.T, pairs ...any) []byte {
	t.Helper()
	doc, err := wirebson.MustDocument(pairs...).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// opMsgOf builds an OP_MSG with body and, if sequence is not empty, one document
// sequence named name, as pymongo sends update and delete statements.
func opMsgOf(flags uint32, body []byte, name string, sequence ...[]byte) []byte {
	msg := make([]byte, headerBytes+4)
	binary.LittleEndian.PutUint32(msg[4:8], 7) // requestID
	binary.LittleEndian.PutUint32(msg[12:16], opMsg)
	binary.LittleEndian.PutUint32(msg[16:20], flags)
	msg = append(append(msg, 0), body...)
	if len(sequence) > 0 {
		section := binary.LittleEndian.AppendUint32(nil, 0)
		section = append(append(section, name...), 0)
		for _, doc := range sequence {
			section = append(section, doc...)
		}
		binary.LittleEndian.PutUint32(section, uint32(len(section)))
		msg = append(append(msg, 1), section...)
	}
	binary.LittleEndian.PutUint32(msg[0:4], uint32(len(msg)))
	return msg
}

func findAndModify(t *testing.T, collection string, query ...any) []byte {
	return opMsgOf(0, raw(t, "findAndModify", collection, "query", wirebson.MustDocument(query...),
		"update", wirebson.MustDocument("$inc", wirebson.MustDocument("version", int32(1))), "$db", "tm"), "")
}

func updates(t *testing.T, flags uint32, filters ...*wirebson.Document) []byte {
	statements := make([][]byte, len(filters))
	for i, q := range filters {
		statements[i] = raw(t, "q", q, "u", wirebson.MustDocument("$set", wirebson.MustDocument("x", int32(1))))
	}
	return opMsgOf(flags, raw(t, "update", "tasks", "ordered", true, "$db", "tm"), "updates", statements...)
}

func parsed(t *testing.T, msg []byte) write {
	t.Helper()
	w, ok := parseWrite(msg, "task_id")
	if !ok {
		t.Fatalf("not taken for a write: % x", msg)
	}
	return w
}

func TestWritesToOneTaskShareTheirKey(t *testing.T) {
	cas := parsed(t, findAndModify(t, "tasks", "task_id", "ts_a", "version", int32(3)))
	claim := parsed(t, updates(t, 0, wirebson.MustDocument("outbox", true, "task_id", "ts_a")))
	if cas.exclusive || claim.exclusive || len(cas.keys) != 1 || len(claim.keys) != 1 {
		t.Fatalf("keyed writes read as %+v and %+v", cas, claim)
	}
	if cas.keys[0] != claim.keys[0] {
		t.Errorf("two writes to task ts_a have different keys: %q, %q", cas.keys[0], claim.keys[0])
	}
	other := parsed(t, findAndModify(t, "tasks", "task_id", "ts_b"))
	elsewhere := parsed(t, findAndModify(t, "archive", "task_id", "ts_a"))
	if other.keys[0] == cas.keys[0] || elsewhere.keys[0] == cas.keys[0] {
		t.Errorf("another task or collection shares the key %q", cas.keys[0])
	}
}

func TestStatementsGiveOneKeyEach(t *testing.T) {
	w := parsed(t, updates(t, 0, wirebson.MustDocument("task_id", "ts_a"), wirebson.MustDocument("task_id", "ts_b")))
	if w.exclusive || len(w.keys) != 2 || w.keys[0] == w.keys[1] {
		t.Errorf("two statements read as %+v", w)
	}
}

func TestWritesNotPinnedToOneTaskAreExclusive(t *testing.T) {
	for name, filter := range map[string]*wirebson.Document{
		"no key":   wirebson.MustDocument("status", "waiting"),
		"operator": wirebson.MustDocument("task_id", wirebson.MustDocument("$in", wirebson.MustArray("ts_a", "ts_b"))),
		"empty":    wirebson.MustDocument(),
	} {
		if w := parsed(t, updates(t, 0, filter)); !w.exclusive {
			t.Errorf("%s: %+v is not exclusive", name, w)
		}
	}
	if w := parsed(t, updates(t, 0, wirebson.MustDocument("task_id", "ts_a"), wirebson.MustDocument("x", int32(1)))); !w.exclusive {
		t.Errorf("one unpinned statement of two: %+v is not exclusive", w)
	}
	truncated := findAndModify(t, "tasks", "task_id", "ts_a")
	truncated = truncated[:len(truncated)-3]
	binary.LittleEndian.PutUint32(truncated[0:4], uint32(len(truncated)))
	if w := parsed(t, truncated); !w.exclusive {
		t.Errorf("an unreadable write is not exclusive: %+v", w)
	}
}

func TestInsertsAndReads(t *testing.T) {
	insert := opMsgOf(0, raw(t, "insert", "tasks", "$db", "tm"), "documents", raw(t, "task_id", "ts_a"))
	if w := parsed(t, insert); w.exclusive || len(w.keys) != 0 {
		t.Errorf("insert read as %+v", w)
	}
	find := opMsgOf(0, raw(t, "find", "tasks", "filter", wirebson.MustDocument("task_id", "ts_a"), "$db", "tm"), "")
	if _, ok := parseWrite(find, "task_id"); ok {
		t.Error("find taken for a write")
	}
	if w := parsed(t, updates(t, moreToCome, wirebson.MustDocument("task_id", "ts_a"))); w.flags&moreToCome == 0 {
		t.Error("moreToCome lost")
	}
}

func TestLocks(t *testing.T) {
	var w writeLocks
	releaseA := w.acquire([]string{"a"}, false)
	releaseB := w.acquire([]string{"b", "b"}, false) // another key goes at once
	if w.keys["a"].TryLock() || w.keys["b"].TryLock() {
		t.Fatal("a held key is free")
	}
	if w.all.TryLock() {
		t.Fatal("an exclusive write could go while keyed writes are in flight")
	}
	releaseA()
	releaseB()
	if len(w.keys) != 0 {
		t.Errorf("released keys kept: %v", w.keys)
	}
	release := w.acquire(nil, true)
	if w.all.TryRLock() {
		t.Fatal("a keyed write could go during an exclusive one")
	}
	release()
	insert := w.acquire(nil, false)
	if !w.all.TryRLock() {
		t.Fatal("an insert holds keyed writes back")
	}
	w.all.RUnlock()
	insert()
}

// answering is a stand-in for FerretDB's socket that answers every message at once.
func answering(t *testing.T) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "backend.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				for {
					msg, err := readMessage(conn)
					if err != nil {
						return
					}
					reply := opMsgOf(0, raw(t, "ok", 1.0), "")
					binary.LittleEndian.PutUint32(reply[8:12], binary.LittleEndian.Uint32(msg[4:8]))
					if _, err := conn.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return socket
}

// A client that sends its next write the moment the last one is answered (as every
// driver does) must find no lock left over from the answered one.
func TestAnAnsweredWriteHoldsNoLock(t *testing.T) {
	proxy := &serializer{backend: answering(t), keyField: "task_id", logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	client, server := net.Pipe()
	defer client.Close()
	go proxy.handle(server)

	writes := [][]byte{
		opMsgOf(0, raw(t, "insert", "tasks", "$db", "tm"), "documents", raw(t, "task_id", "ts_a")),
		findAndModify(t, "tasks", "task_id", "ts_a"),
		updates(t, 0, wirebson.MustDocument("status", "running")), // exclusive
		findAndModify(t, "tasks", "task_id", "ts_a"),
	}
	for i, msg := range writes {
		binary.LittleEndian.PutUint32(msg[4:8], uint32(100+i))
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		reply, err := readMessage(client)
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint32(reply[8:12]); got != uint32(100+i) {
			t.Fatalf("answer to %d, want %d", got, 100+i)
		}
		if !proxy.locks.all.TryLock() {
			t.Fatalf("write %d answered but its lock is still held", i)
		}
		proxy.locks.all.Unlock()
		if len(proxy.locks.keys) != 0 {
			t.Fatalf("write %d answered but keys still held: %v", i, proxy.locks.keys)
		}
	}
}
