package main

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
)

// FerretDB v1 applies update, findAndModify and delete as "query the matching
// documents, then write them back by _id" without isolation between the two steps
// (internal/handler/msg_update.go, backends/postgresql UpdateAll), so two concurrent
// conditional updates of one document can both succeed and one write is lost.
// Real MongoDB applies each single-document update atomically, and Taskmill relies
// on that. This proxy restores it for local runs: it sits in front of FerretDB and
// holds each write command back until no other write that may change the same
// documents is in flight, then until FerretDB has answered it.
//
// Which documents a write may change it tells from the key field (-key, Taskmill's
// task_id: unique, and never changed by an update): a write whose every filter pins the
// key field to one value waits only for writes with the same value in the same
// collection, as MongoDB's per-document locking would; any other write (a filter
// without the key, or one the proxy cannot read) waits for every write in flight and
// holds all the others back. Inserts only create documents, which no filter in flight
// can have matched, so they wait only for those exclusive writes.

const (
	opMsg           = 2013
	checksumPresent = 1 << 0
	moreToCome      = 1 << 1
	headerBytes     = 16
	maxMessage      = 48 * 1024 * 1024
)

// statements names, per write command, where its filters are: the statements' array
// (or OP_MSG document sequence) and the filter field of each; findAndModify has one
// filter in the command itself.
var statements = map[string][2]string{
	"update": {"updates", "q"}, "delete": {"deletes", "q"},
	"findAndModify": {"", "query"}, "findandmodify": {"", "query"},
	"insert": {"", ""},
}

// writeLocks lets writes with disjoint keys run at once and serializes the rest.
type writeLocks struct {
	all  sync.RWMutex // read-held by keyed writes and inserts, write-held by the others
	mu   sync.Mutex
	keys map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	users int
}

// acquire blocks until a write changing the documents of keys (all of them when
// exclusive) may go, and returns what lets the next one go.
func (w *writeLocks) acquire(keys []string, exclusive bool) (release func()) {
	if exclusive {
		w.all.Lock()
		return w.all.Unlock
	}
	w.all.RLock()
	if len(keys) == 0 {
		return w.all.RUnlock
	}
	names := slices.Compact(slices.Sorted(slices.Values(keys))) // one order for all: no deadlock
	held := make([]*keyLock, 0, len(names))
	for _, key := range names {
		w.mu.Lock()
		if w.keys == nil {
			w.keys = map[string]*keyLock{}
		}
		k := w.keys[key]
		if k == nil {
			k = &keyLock{}
			w.keys[key] = k
		}
		k.users++
		w.mu.Unlock()
		k.Lock()
		held = append(held, k)
	}
	return func() {
		w.mu.Lock()
		for i, k := range held {
			k.Unlock()
			if k.users--; k.users == 0 {
				delete(w.keys, names[i])
			}
		}
		w.mu.Unlock()
		w.all.RUnlock()
	}
}

type serializer struct {
	backend  string // unix socket of FerretDB
	keyField string
	locks    writeLocks
	logger   *slog.Logger
}

func (s *serializer) serve(l net.Listener) error {
	for {
		client, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.handle(client)
	}
}

// connState tracks the writes a connection has in flight, each holding its lock until
// FerretDB answers it.
type connState struct {
	mu      sync.Mutex
	pending map[uint32]func() // by request id
}

func (c *connState) hold(requestID uint32, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[uint32]func(){}
	}
	if earlier := c.pending[requestID]; earlier != nil { // a reused id: its answer is lost
		earlier()
	}
	c.pending[requestID] = release
}

// done releases the lock of the write answered by responseTo.
func (c *connState) done(responseTo uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if release := c.pending[responseTo]; release != nil {
		delete(c.pending, responseTo)
		release()
	}
}

// drop releases every lock the connection still holds.
func (c *connState) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, release := range c.pending {
		delete(c.pending, id)
		release()
	}
}

func (s *serializer) handle(client net.Conn) {
	defer client.Close()
	backend, err := net.Dial("unix", s.backend)
	if err != nil {
		s.logger.Error("cannot reach FerretDB", "error", err)
		return
	}
	defer backend.Close()

	state := &connState{}
	defer state.drop()

	done := make(chan struct{}, 2)
	go func() { // backend -> client: a reply to the pending write releases its lock
		defer func() { done <- struct{}{} }()
		for {
			msg, err := readMessage(backend)
			if err != nil {
				return
			}
			// Released before the client sees the answer: its next write, sent the
			// moment the answer arrives, must not find this one's lock still held.
			state.done(binary.LittleEndian.Uint32(msg[8:12]))
			if _, err := client.Write(msg); err != nil {
				return
			}
		}
	}()
	go func() { // client -> backend: a write command waits for its lock
		defer func() { done <- struct{}{} }()
		for {
			msg, err := readMessage(client)
			if err != nil {
				return
			}
			if w, ok := parseWrite(msg, s.keyField); ok && w.flags&moreToCome == 0 {
				state.hold(binary.LittleEndian.Uint32(msg[4:8]), s.locks.acquire(w.keys, w.exclusive))
			}
			if _, err := backend.Write(msg); err != nil {
				return
			}
		}
	}()
	<-done
	client.Close()
	backend.Close()
	<-done
}

func readMessage(r io.Reader) ([]byte, error) {
	header := make([]byte, headerBytes)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	length := binary.LittleEndian.Uint32(header[0:4])
	if length < headerBytes || length > maxMessage {
		return nil, errors.New("bad message length")
	}
	msg := make([]byte, length)
	copy(msg, header)
	if _, err := io.ReadFull(r, msg[headerBytes:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// write is what the proxy needs to know of a write command.
type write struct {
	flags     uint32
	keys      []string // one per filter: namespace and key value
	exclusive bool     // a filter does not name its documents by the key field
}

// parseWrite reads an OP_MSG write command; ok is false for anything else (reads,
// other opcodes). A write it cannot take apart is exclusive.
func parseWrite(msg []byte, keyField string) (w write, ok bool) {
	if len(msg) < headerBytes+5 || binary.LittleEndian.Uint32(msg[12:16]) != opMsg {
		return w, false
	}
	w.flags = binary.LittleEndian.Uint32(msg[16:20])
	end := len(msg)
	if w.flags&checksumPresent != 0 {
		end -= 4
	}
	var body []byte
	sequences := map[string][][]byte{}
	for pos := headerBytes + 4; pos < end; {
		kind := msg[pos]
		pos++
		size, good := int32At(msg[:end], pos)
		if !good || size < 5 || pos+size > end {
			return write{flags: w.flags, exclusive: true}, true // unreadable: hold everything
		}
		section := msg[pos : pos+size]
		pos += size
		switch kind {
		case 0:
			body = section
		case 1:
			name, rest, good := cstring(section[4:])
			if !good {
				return write{flags: w.flags, exclusive: true}, true
			}
			for len(rest) > 0 {
				n, good := int32At(rest, 0)
				if !good || n < 5 || n > len(rest) {
					return write{flags: w.flags, exclusive: true}, true
				}
				sequences[name] = append(sequences[name], rest[:n])
				rest = rest[n:]
			}
		}
	}
	if body == nil || !isWrite(body) {
		return w, false
	}
	command, collection, _ := firstString(body)
	where := statements[command]
	if command == "insert" {
		return w, true
	}
	db, _ := stringField(body, "$db")
	namespace := db + "\x00" + collection + "\x00"
	var filters [][]byte
	if where[0] == "" {
		filter, typ, _ := field(body, where[1])
		if typ != 0x03 {
			w.exclusive = true
			return w, true
		}
		filters = [][]byte{filter}
	} else {
		docs := sequences[where[0]]
		if array, typ, found := field(body, where[0]); found && typ == 0x04 {
			docs = append(docs, values(array)...)
		}
		for _, statement := range docs {
			filter, typ, _ := field(statement, where[1])
			if typ != 0x03 {
				w.exclusive = true
				return w, true
			}
			filters = append(filters, filter)
		}
	}
	if len(filters) == 0 {
		w.exclusive = true
		return w, true
	}
	for _, filter := range filters {
		value, typ, found := field(filter, keyField)
		if !found || typ == 0x03 || typ == 0x04 || typ == 0x0B { // absent, operators, regex
			w.exclusive = true
			return w, true
		}
		w.keys = append(w.keys, namespace+string([]byte{typ})+string(value))
	}
	return w, true
}

func isWrite(body []byte) bool {
	command, _, _ := firstString(body)
	_, ok := statements[command]
	return ok
}

// firstString returns the first element's name and, if it is a string, its value.
func firstString(doc []byte) (name, value string, ok bool) {
	found := false
	eachElement(doc, func(n string, typ byte, v []byte) bool {
		name, found = n, true
		if typ == 0x02 && len(v) >= 5 {
			value, ok = string(v[4:len(v)-1]), true
		}
		return false
	})
	return name, value, ok && found
}

func stringField(doc []byte, name string) (string, bool) {
	v, typ, found := field(doc, name)
	if !found || typ != 0x02 || len(v) < 5 {
		return "", false
	}
	return string(v[4 : len(v)-1]), true
}

// field returns the raw value and BSON type of doc's top-level element name.
func field(doc []byte, name string) (value []byte, typ byte, found bool) {
	eachElement(doc, func(n string, t byte, v []byte) bool {
		if n == name {
			value, typ, found = v, t, true
			return false
		}
		return true
	})
	return value, typ, found
}

// values returns the embedded documents of a BSON array.
func values(array []byte) (docs [][]byte) {
	eachElement(array, func(_ string, t byte, v []byte) bool {
		if t == 0x03 {
			docs = append(docs, v)
		}
		return true
	})
	return docs
}

// eachElement calls f with each top-level element of a BSON document until f returns
// false or the document ends (or turns out malformed).
func eachElement(doc []byte, f func(name string, typ byte, value []byte) bool) {
	if len(doc) < 5 {
		return
	}
	for pos := 4; pos < len(doc)-1; {
		typ := doc[pos]
		name, rest, ok := cstring(doc[pos+1:])
		if !ok {
			return
		}
		start := len(doc) - len(rest)
		size := valueSize(typ, rest)
		if size < 0 || size > len(rest) {
			return
		}
		if !f(name, typ, doc[start:start+size]) {
			return
		}
		pos = start + size
	}
}

// valueSize is the length of a BSON value of type typ at the start of b, or -1.
func valueSize(typ byte, b []byte) int {
	switch typ {
	case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
		return 8
	case 0x02, 0x0D, 0x0E: // string, JavaScript, symbol
		n, ok := int32At(b, 0)
		if !ok {
			return -1
		}
		return 4 + n
	case 0x03, 0x04, 0x0F: // document, array, code with scope
		n, ok := int32At(b, 0)
		if !ok {
			return -1
		}
		return n
	case 0x05: // binary
		n, ok := int32At(b, 0)
		if !ok {
			return -1
		}
		return 5 + n
	case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, maxKey, minKey
		return 0
	case 0x07: // ObjectId
		return 12
	case 0x08: // bool
		return 1
	case 0x0B: // regex: two cstrings
		_, rest, ok := cstring(b)
		if !ok {
			return -1
		}
		_, rest, ok = cstring(rest)
		if !ok {
			return -1
		}
		return len(b) - len(rest)
	case 0x0C: // DBPointer
		n, ok := int32At(b, 0)
		if !ok {
			return -1
		}
		return 4 + n + 12
	case 0x10: // int32
		return 4
	case 0x13: // decimal128
		return 16
	}
	return -1
}

func int32At(b []byte, pos int) (int, bool) {
	if pos < 0 || pos+4 > len(b) {
		return 0, false
	}
	return int(int32(binary.LittleEndian.Uint32(b[pos : pos+4]))), true
}

func cstring(b []byte) (s string, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
