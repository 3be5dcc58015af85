"""The console's words in Indonesian (the default) and English."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("id", "en")
DEFAULT = "id"
LANG_COOKIE = "sambung_lang"

# key: (Indonesian, English)
WORDS: dict[str, tuple[str, str]] = {
    "overview": ("Ringkasan", "Overview"),
    "dead_letters": ("Surat mati", "Dead letters"),
    "records": ("Data", "Records"),
    "import": ("Impor CSV", "CSV import"),
    "config": ("Konfigurasi", "Config"),
    "sign_in": ("Masuk", "Sign in"),
    "sign_out": ("Keluar", "Sign out"),
    "admin_token": ("Token admin", "Admin token"),
    "wrong_token": ("Token salah.", "Wrong token."),
    "signed_out": ("Anda sudah keluar.", "You are signed out."),
    "connections": ("Koneksi", "Connections"),
    "outlet": ("Outlet", "Outlet"),
    "connector": ("Konektor", "Connector"),
    "mode": ("Mode", "Mode"),
    "state": ("Status", "State"),
    "last_success": ("Sukses terakhir", "Last success"),
    "lag": ("Jeda", "Lag"),
    "records_today": ("Data hari ini", "Records today"),
    "open_dead_letters": ("Surat mati terbuka", "Open dead letters"),
    "sinks": ("Tujuan", "Sinks"),
    "sink": ("Tujuan", "Sink"),
    "type": ("Jenis", "Type"),
    "pending": ("Menunggu", "Pending"),
    "oldest_pending": ("Tertua menunggu", "Oldest pending"),
    "retrying": ("Diulang", "Retrying"),
    "delivered": ("Terkirim", "Delivered"),
    "failed": ("Gagal", "Failed"),
    "paused": ("Dijeda", "Paused"),
    "disabled": ("Nonaktif", "Disabled"),
    "today_totals": ("Total hari ini", "Today's totals"),
    "business_date": ("Tanggal usaha", "Business date"),
    "sales": ("Penjualan", "Sales"),
    "refunds": ("Pengembalian", "Refunds"),
    "count": ("Jumlah", "Count"),
    "by_payment_method": ("Per metode bayar", "By payment method"),
    "alerts": ("Peringatan", "Alerts"),
    "no_alerts": ("Tidak ada peringatan.", "No alerts."),
    "last_error": ("Galat terakhir", "Last error"),
    "cursor": ("Kursor", "Cursor"),
    "webhook_url": ("URL webhook untuk didaftarkan", "Webhook URL to register"),
    "recent_records": ("Data terbaru", "Recent records"),
    "connect_oauth": ("Hubungkan / sambung ulang OAuth", "Connect / reconnect OAuth"),
    "resume": ("Lanjutkan", "Resume"),
    "group_by_error": ("Per jenis galat", "By error class"),
    "error_class": ("Jenis galat", "Error class"),
    "stage": ("Tahap", "Stage"),
    "status": ("Status", "Status"),
    "filter": ("Saring", "Filter"),
    "all": ("Semua", "All"),
    "created": ("Dibuat", "Created"),
    "error": ("Galat", "Error"),
    "payload": ("Isi", "Payload"),
    "attempts": ("Percobaan", "Attempts"),
    "dry_run": ("Uji coba kirim ulang", "Dry-run redrive"),
    "dry_run_result": ("Hasil uji coba (belum ada yang diubah)", "Dry run (nothing changed yet)"),
    "replay": ("Kirim ulang", "Replay"),
    "discard": ("Buang", "Discard"),
    "confirm_discard": ("Buang surat mati ini?", "Discard this dead letter?"),
    "none": ("Tidak ada.", "None."),
    "search": ("Cari", "Search"),
    "external_id": ("ID eksternal", "External id"),
    "kind": ("Jenis", "Kind"),
    "revision": ("Revisi", "Revision"),
    "revisions": ("Revisi", "Revisions"),
    "raw_event": ("Kejadian mentah", "Raw event"),
    "deliveries": ("Pengiriman", "Deliveries"),
    "receiver_answer": ("Jawaban penerima", "Receiver's answer"),
    "upload": ("Unggah", "Upload"),
    "file": ("Berkas", "File"),
    "row": ("Baris", "Row"),
    "row_errors": ("Galat per baris", "Row errors"),
    "download_errors": ("Unduh berkas galat", "Download the errors file"),
    "imported": ("Diimpor", "Imported"),
    "rejected": ("Ditolak", "Rejected"),
    "check": ("Hasil `sambung check`", "What `sambung check` says"),
    "plugins": ("Plugin dan versinya", "Plugins and versions"),
    "not_found": ("Tidak ditemukan.", "Not found."),
    "action_done": ("Selesai", "Done"),
    "language": ("Bahasa", "Language"),
    "refreshes": ("Diperbarui otomatis", "Refreshes itself"),
    "loops": ("Loop bermasalah", "Loop problems"),
    "received_at": ("Diterima", "Received"),
    "never": ("belum pernah", "never"),
    "fetched": ("Diambil", "Fetched"),
    "last_run": ("Polling terakhir", "Last run"),
    "updated": ("Diperbarui", "Updated"),
    "backfill": ("Ambil ulang (backfill)", "Backfill"),
    "backfill_start": ("Mulai ambil ulang", "Start the backfill"),
    "since": ("Dari", "Since"),
    "until": ("Sampai", "Until"),
    "window": ("Rentang", "Window"),
    "progress": ("Kemajuan", "Progress"),
    "pages": ("Halaman", "Pages"),
    "records_new": ("Baru", "New"),
    "records_changed": ("Berubah", "Changed"),
    "records_unchanged": ("Sama", "Unchanged"),
    "moved": ("Bergeser", "Moved"),
    "move_cursor": ("Pindahkan kursor", "Move the cursor"),
    "move_cursor_to": ("Pindahkan ke", "Move it to"),
    "confirm_cursor": (
        "Polling berikutnya mulai dari kursor baru. Data yang sudah tersimpan tetap ada.",
        "The next poll starts from the new cursor. Records already stored stay.",
    ),
    "confirm": ("Ya, pindahkan", "Yes, move it"),
    "cancel": ("Batal", "Cancel"),
    "reason": ("Alasan", "Reason"),
    "at": ("Waktu", "At"),
    "actor": ("Oleh", "By"),
    "before": ("Sebelum", "Before"),
    "target": ("Konektor / tujuan", "Connector / sink"),
    "attention": ("Perlu dilihat sekarang", "Needs a look now"),
    "reconciliation": ("Rekonsiliasi", "Reconciliation"),
    # A day's reconciliation: still open (figures so far), or its verdict once closed.
    "recon_open": ("masih buka", "still open"),
    "recon_matched": ("cocok", "matched"),
    "recon_differs": ("selisih", "differs"),
    "collected": ("Diterima gateway", "Collected"),
    "fees": ("Biaya", "Fees"),
    "difference": ("Selisih", "Difference"),
    "unmatched": ("Tak cocok (penjualan / bayar)", "Unmatched (sales / payments)"),
    "gap_report": ("Laporan celah webhook (7 hari)", "Webhook gap report (7 days)"),
    "poll_only": ("Hanya lewat poll", "Poll only"),
    "lost": ("Webhook hilang", "Webhooks lost"),
    "verdict": ("Hasil", "Verdict"),
    "detail": ("Rincian", "Detail"),
    "invoice": ("Faktur", "Invoice"),
    "would_go": ("akan dikirim ulang", "would go again"),
    "attempt": ("Ke-", "Attempt"),
    "next_attempt": ("Percobaan berikut", "Next attempt"),
    "after": ("Sesudah", "After"),
}


def translator(lang: str) -> Callable[[str], str]:
    """`t(key)` in `lang`; an unknown key shows as itself (a missing word, never a crash)."""
    index = 0 if lang == "id" else 1

    def t(key: str) -> str:
        words = WORDS.get(key)
        return words[index] if words else key

    return t


def language_of(cookie: str | None) -> str:
    """The console's language from its cookie (Indonesian unless English was chosen)."""
    return cookie if cookie in LANGUAGES else DEFAULT
