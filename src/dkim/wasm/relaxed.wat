;; SIMD scans of message bytes, 16 octets at a time (WebAssembly SIMD):
;; RFC 6376 §3.4.4 relaxed body canonicalization of a "clean" region, the
;; search for bare LFs before normalization, and the receipt scan of
;; transport_encoding = "7bit" (src/mime/scan.ts). See relaxed-wasm.ts for the contract:
;; the region starts with nothing pending and its last octet is content, so
;; every WSP run inside ends before the region does.
;;
;; Only three patterns change under relaxed: a TAB, a SP followed by SP/TAB,
;; and a SP followed by CR. A block holding none of them is copied as is.
(module
  (memory (export "memory") 1)

  ;; relax(src, end, dst) -> new dst. Reads [src, end] (one octet past the
  ;; region is read as lookahead), writes the canonical form at dst.
  (func (export "relax") (param $p i32) (param $end i32) (param $d i32) (result i32)
    (local $v v128) (local $n v128) (local $mask i32) (local $k i32) (local $c i32)

    (block $simd_done
      (loop $simd
        (br_if $simd_done (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $n (v128.load offset=1 (local.get $p)))
        (local.set $mask
          (i8x16.bitmask
            (v128.or
              (i8x16.eq (local.get $v) (i8x16.splat (i32.const 9)))
              (v128.and
                (i8x16.eq (local.get $v) (i8x16.splat (i32.const 32)))
                (v128.or
                  (v128.or
                    (i8x16.eq (local.get $n) (i8x16.splat (i32.const 32)))
                    (i8x16.eq (local.get $n) (i8x16.splat (i32.const 9))))
                  (i8x16.eq (local.get $n) (i8x16.splat (i32.const 13))))))))
        ;; Store the whole block; when a run starts inside it, only the
        ;; octets before the run count and the rest is overwritten later.
        (v128.store (local.get $d) (local.get $v))
        (if (i32.eqz (local.get $mask))
          (then
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br $simd)))
        ;; The first flagged octet always starts a WSP run.
        (local.set $k (i32.ctz (local.get $mask)))
        (local.set $p (i32.add (local.get $p) (local.get $k)))
        (local.set $d (i32.add (local.get $d) (local.get $k)))
        (local.set $d (call $run (local.get $p) (local.get $d)))
        (local.set $p (call $skip_wsp (local.get $p)))
        (br $simd)))

    ;; Fewer than 16 octets left: one at a time.
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
          (then
            (local.set $d (call $run (local.get $p) (local.get $d)))
            (local.set $p (call $skip_wsp (local.get $p)))
            (br $tail)))
        (i32.store8 (local.get $d) (local.get $c))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (br $tail)))
    (local.get $d))

  ;; bare_lf(p, end) -> the address of the first LF in [p, end) whose previous
  ;; octet is not CR, or -1. Reads [p - 1, end + 15): p - 1 must be readable.
  (func (export "bare_lf") (param $p i32) (param $end i32) (result i32)
    (local $mask i32)
    (block $simd_done
      (loop $simd
        (br_if $simd_done (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end)))
        (local.set $mask
          (i8x16.bitmask
            (v128.andnot
              (i8x16.eq (v128.load (local.get $p)) (i8x16.splat (i32.const 10)))
              (i8x16.eq (v128.load offset=0 (i32.sub (local.get $p) (i32.const 1))) (i8x16.splat (i32.const 13))))))
        (if (local.get $mask)
          (then (return (i32.add (local.get $p) (i32.ctz (local.get $mask))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $simd)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $p) (local.get $end)))
        (if (i32.and
              (i32.eq (i32.load8_u (local.get $p)) (i32.const 10))
              (i32.ne (i32.load8_u (i32.sub (local.get $p) (i32.const 1))) (i32.const 13)))
          (then (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $tail)))
    (i32.const -1))

;; The current line's octets (CR included) before the address seven_bit returned.
  (global $line (export "line") (mut i32) (i32.const 0))

  ;; seven_bit(p, end, line) -> the address of the first octet in [p, end)
  ;; that a 7-bit hop would trip on (8-bit, NUL, a CR not before LF, an LF not
  ;; after CR, the LF ending a line of more than 998 octets) or that may start
  ;; a Content-Transfer-Encoding label (C or c after an LF); end when there is
  ;; none. `line` is the current line's octets before p. Reads [p - 1, end + 16):
  ;; the caller puts the previous octet before p and an LF at end.
  (func (export "seven_bit") (param $p i32) (param $end i32) (param $line i32) (result i32)
    (local $v v128) (local $prev v128) (local $next v128)
    (local $ev i32) (local $all i32) (local $k i32) (local $start i32) (local $c i32) (local $b i32)
    (block $simd_done
      (loop $simd
        (br_if $simd_done (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $prev (v128.load (i32.sub (local.get $p) (i32.const 1))))
        (local.set $next (v128.load offset=1 (local.get $p)))
        (local.set $ev
          (i32.or
            (i8x16.bitmask (local.get $v))
            (i8x16.bitmask
              (v128.or
                (v128.or
                  (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0)))
                  (v128.andnot (i8x16.eq (local.get $v) (i8x16.splat (i32.const 13))) (i8x16.eq (local.get $next) (i8x16.splat (i32.const 10)))))
                (v128.or
                  (v128.andnot (i8x16.eq (local.get $v) (i8x16.splat (i32.const 10))) (i8x16.eq (local.get $prev) (i8x16.splat (i32.const 13))))
                  (v128.and
                    (i8x16.eq (v128.or (local.get $v) (i8x16.splat (i32.const 32))) (i8x16.splat (i32.const 99)))
                    (i8x16.eq (local.get $prev) (i8x16.splat (i32.const 10)))))))))
        (local.set $all (i32.or (local.get $ev) (i8x16.bitmask (i8x16.eq (local.get $v) (i8x16.splat (i32.const 10))))))
        (if (i32.eqz (local.get $all))
          (then
            (local.set $line (i32.add (local.get $line) (i32.const 16)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $simd)))
        ;; Events and line ends in this block, in order.
        (local.set $start (i32.const 0))
        (loop $bits
          (local.set $k (i32.ctz (local.get $all)))
          (local.set $c (i32.add (local.get $line) (i32.sub (local.get $k) (local.get $start))))
          (if (i32.or
                (i32.and (local.get $ev) (i32.shl (i32.const 1) (local.get $k)))
                (i32.gt_u (local.get $c) (i32.const 999)))
            (then
              (global.set $line (local.get $c))
              (return (i32.add (local.get $p) (local.get $k)))))
          (local.set $line (i32.const 0))
          (local.set $start (i32.add (local.get $k) (i32.const 1)))
          (local.set $all (i32.and (local.get $all) (i32.sub (local.get $all) (i32.const 1))))
          (br_if $bits (local.get $all)))
        (local.set $line (i32.add (local.get $line) (i32.sub (i32.const 16) (local.get $start))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $simd)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (local.set $b (i32.load8_u (i32.sub (local.get $p) (i32.const 1))))
        (if (i32.or
              (i32.or (i32.ge_u (local.get $c) (i32.const 128)) (i32.eqz (local.get $c)))
              (i32.or
                (i32.and (i32.eq (local.get $c) (i32.const 13)) (i32.ne (i32.load8_u offset=1 (local.get $p)) (i32.const 10)))
                (i32.or
                  (i32.and (i32.eq (local.get $c) (i32.const 10)) (i32.ne (local.get $b) (i32.const 13)))
                  (i32.or
                    (i32.and (i32.eq (i32.or (local.get $c) (i32.const 32)) (i32.const 99)) (i32.eq (local.get $b) (i32.const 10)))
                    (i32.and (i32.eq (local.get $c) (i32.const 10)) (i32.gt_u (local.get $line) (i32.const 999)))))))
          (then
            (global.set $line (local.get $line))
            (return (local.get $p))))
        (local.set $line (if (result i32) (i32.eq (local.get $c) (i32.const 10)) (then (i32.const 0)) (else (i32.add (local.get $line) (i32.const 1)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $tail)))
    (global.set $line (local.get $line))
    (local.get $end))

  ;; The first octet at or after p that is not SP or TAB.
  (func $skip_wsp (param $p i32) (result i32)
    (local $c i32)
    (loop $more
      (local.set $c (i32.load8_u (local.get $p)))
      (if (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
        (then
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $more))))
    (local.get $p))

  ;; A WSP run starting at p: nothing when a CRLF follows it (end of line),
  ;; else one SP. Returns the new dst.
  (func $run (param $p i32) (param $d i32) (result i32)
    (local $q i32)
    (local.set $q (call $skip_wsp (local.get $p)))
    (if (i32.and
          (i32.eq (i32.load8_u (local.get $q)) (i32.const 13))
          (i32.eq (i32.load8_u offset=1 (local.get $q)) (i32.const 10)))
      (then (return (local.get $d))))
    (i32.store8 (local.get $d) (i32.const 32))
    (i32.add (local.get $d) (i32.const 1)))
)
