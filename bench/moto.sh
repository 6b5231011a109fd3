# Sourced by the bench scripts that need an S3 server: start_moto WORKDIR starts moto_server
# on a free port of 127.0.0.1 (log in WORKDIR/moto.log), sets $port and $moto (its PID, for
# the caller's trap to kill), and returns once it answers.
start_moto() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -p "$port" > "$1/moto.log" 2>&1 &
  moto=$!
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/" > /dev/null && return 0; sleep 0.1; done
  echo "moto_server did not answer on port $port (see $1/moto.log)" >&2
  return 1
}
