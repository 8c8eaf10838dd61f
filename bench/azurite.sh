# Azurite for the benchmarks, sourced by each script (after it sets `work`, `azurite`, and
# its `say`, `die` and `lib` helpers). Azurite's stdin is a pipe whose only writer is the
# script's fd 9 (closed for every child): when the script ends, however it ends, the wrapper
# reads EOF and stops Azurite (killed outright if it has not
# gone 5 s later). Every start passes --disableTelemetry.

port=
azurite_up=
port_open() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

stop_azurite() {
  [[ -n $azurite_up ]] || return 0
  exec 9>&- # the wrapper sees EOF and stops Azurite
  azurite_up=
  local deadline=$((SECONDS + 20))
  while port_open "$port" && ((SECONDS < deadline)); do sleep 0.1; done
}

# start_azurite STORE_ARGS...: Azurite on a free loopback port (tried again on another port
# when the one picked was taken meanwhile); sets `port`. STORE_ARGS is
# --inMemoryPersistence or --location DIR.
start_azurite() {
  local attempt rc
  for attempt in 1 2 3 4 5; do
    port=$(lib free-port)
    : >"$work/azurite.log"
    azurite_up=1
    # A busy node may not get to its SIGTERM handler: SIGKILL after 5 s.
    exec 9> >(exec sh -c '"$0" "$@" </dev/null & pid=$!; read -r _; kill "$pid"
      i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
      kill -9 "$pid" 2>/dev/null' \
      "$azurite" --disableTelemetry --skipApiVersionCheck --loose --silent "$@" \
      --blobHost 127.0.0.1 --blobPort "$port" >"$work/azurite.log" 2>&1)
    rc=0
    lib wait-ready "$port" "$work/azurite.log" 30 || rc=$?
    [[ $rc == 0 ]] && return 0
    stop_azurite
    [[ $rc == 3 && $attempt -lt 5 ]] || die "Azurite did not start (see above)"
    say "port $port was taken, trying another"
  done
}
