# PNG plots of `make bench`:  gnuplot -e "d='DATA-DIR'" bench/plots.gp
# Reads the .dat files kvm_bench and qemu_bench.py wrote into DATA-DIR.
if (!exists("d")) d = "build/bench"
set terminal pngcairo size 900,560 noenhanced font ",10"
set grid
set key top left

set output d."/pause.png"
set title "Checkpoint pause against dirty pages (KVM backend), with the memcpy floor"
set xlabel "dirty pages per epoch"
set ylabel "ms"
set logscale xy
plot d."/pause.dat" using 1:2 with linespoints lw 2 title "pause p50", \
     d."/pause.dat" using 1:4 with linespoints title "pause p99", \
     d."/pause.dat" using 1:5 with linespoints title "pause p50, compressed stream", \
     d."/pause.dat" using 1:3 with linespoints lw 2 title "memcpy floor (same pages)", \
     d."/pause.dat" using 1:($3*2) with lines dt 2 title "goal: 2x the floor"
unset logscale

set output d."/latency.png"
set title "Request latency of a protected (light) guest against the checkpoint interval"
set xlabel "checkpoint interval (ms)"
set ylabel "ms"
set logscale x
set xtics (10, 25, 100)
plot d."/latency.dat" using 1:2 with linespoints lw 2 title "buffered p50", \
     d."/latency.dat" using 1:3 with linespoints lw 2 title "buffered p99", \
     d."/latency.dat" using 1:4 with linespoints title "-n (unbuffered) p50", \
     d."/latency.dat" using 1:5 with linespoints title "-n (unbuffered) p99", \
     d."/latency.dat" using 1:($1+1) with lines dt 2 title "goal: interval + 1 ms"
unset logscale

set output d."/throughput.png"
set title "Memory-busy guest: page-writes/s protected / unprotected"
set xlabel "checkpoint interval (ms)"
set ylabel "ratio (log)"
set logscale xy
set xtics (10, 25, 100)
set yrange [1e-5:1.5]
plot d."/throughput.dat" using 1:($4 < 1e-5 ? 1e-5 : $4) with linespoints lw 2 title "remus (KVM micro-VMM)", \
     d."/qemu.dat" using 1:($2 < 1e-5 ? 1e-5 : $2) with linespoints lw 2 title "QEMU COLO (same guest, same host)", \
     0.8 with lines dt 2 title "goal: at most 20% slowdown"
