//! A minimal SVG chart writer: linear x axis, log y axis, bars and lines, legend, notes.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 66.0;
const BOTTOM: f64 = 58.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// How a series is drawn.
pub enum Style {
    /// One bar per point, `width` wide in data units, centred on x.
    Bars { width: f64 },
    /// A polyline with round markers (broken where y <= 0).
    Line { dashed: bool },
}

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

/// A text note at data coordinates.
pub struct Note {
    pub x: f64,
    pub y: f64,
    pub text: String,
    pub anchor: &'static str,
}

pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub x_range: (f64, f64),
    pub x_ticks: Vec<f64>,
    /// y axis from 10^lo to 10^hi.
    pub y_decades: (i32, i32),
    pub series: Vec<Series>,
    pub notes: Vec<Note>,
    /// Legend in the lower right corner (upper right otherwise).
    pub legend_low: bool,
}

impl Chart {
    fn px(&self, x: f64) -> f64 {
        let (lo, hi) = self.x_range;
        LEFT + (x - lo) / (hi - lo) * (WIDTH - LEFT - RIGHT)
    }

    /// Clamped to the plot area.
    fn py(&self, y: f64) -> f64 {
        let (lo, hi) = (f64::from(self.y_decades.0), f64::from(self.y_decades.1));
        let t = ((y.log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
        HEIGHT - BOTTOM - t * (HEIGHT - TOP - BOTTOM)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        self.header(&mut s);
        self.grid_and_axes(&mut s);
        for series in &self.series {
            self.draw(&mut s, series);
        }
        self.frame(&mut s);
        for note in &self.notes {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#333" text-anchor="{}">{}</text>"##,
                self.px(note.x),
                self.py(note.y),
                note.anchor,
                escape(&note.text)
            );
        }
        self.legend(&mut s);
        s.push_str("</svg>\n");
        s
    }

    fn header(&self, s: &mut String) {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="26" font-size="17" font-weight="bold" fill="#222">{}</text>"##,
            escape(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="46" font-size="12.5" fill="#555">{}</text>"##,
            escape(&self.subtitle)
        );
    }

    fn grid_and_axes(&self, s: &mut String) {
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (HEIGHT - BOTTOM, TOP);
        // y: a labelled line per decade, light lines at 2..9.
        for k in self.y_decades.0..=self.y_decades.1 {
            let y = self.py(10f64.powi(k));
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#d0d0d0"/>"##
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="13" fill="#333" text-anchor="end">10<tspan dy="-6" font-size="10">{}</tspan></text>"##,
                x0 - 8.0,
                y + 4.5,
                minus(k)
            );
            if k < self.y_decades.1 {
                for m in 2..10 {
                    let ym = self.py(f64::from(m) * 10f64.powi(k));
                    let _ = writeln!(
                        s,
                        r##"<line x1="{x0}" x2="{x1}" y1="{ym:.1}" y2="{ym:.1}" stroke="#f0f0f0"/>"##
                    );
                }
            }
        }
        for &t in &self.x_ticks {
            let x = self.px(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y0}" stroke="#ececec"/>"##
            );
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y0}" y2="{:.1}" stroke="#444"/>"##,
                y0 + 5.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{x:.1}" y="{:.1}" font-size="13" fill="#333" text-anchor="middle">{}</text>"##,
                y0 + 20.0,
                tick_label(t)
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="14" fill="#222" text-anchor="middle">{}</text>"##,
            (x0 + x1) / 2.0,
            HEIGHT - 14.0,
            escape(&self.x_label)
        );
        let cy = (y0 + y1) / 2.0;
        let _ = writeln!(
            s,
            r##"<text x="20" y="{cy:.1}" font-size="14" fill="#222" text-anchor="middle" transform="rotate(-90 20 {cy:.1})">{}</text>"##,
            escape(&self.y_label)
        );
    }

    fn frame(&self, s: &mut String) {
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            WIDTH - LEFT - RIGHT,
            HEIGHT - TOP - BOTTOM
        );
    }

    fn draw(&self, s: &mut String, series: &Series) {
        match series.style {
            Style::Bars { width } => {
                for &(x, y) in series.points.iter().filter(|p| p.1 > 0.0) {
                    let (xa, xb) = (self.px(x - width / 2.0), self.px(x + width / 2.0));
                    let top = self.py(y);
                    let _ = writeln!(
                        s,
                        r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.8" stroke="white" stroke-width="0.6"/>"#,
                        xa,
                        (xb - xa).max(0.5),
                        HEIGHT - BOTTOM - top,
                        series.color
                    );
                }
            }
            Style::Line { dashed } => {
                let dash = if dashed {
                    r#" stroke-dasharray="7 4""#
                } else {
                    ""
                };
                for run in series
                    .points
                    .split(|p| p.1 <= 0.0)
                    .filter(|r| !r.is_empty())
                {
                    let pts: Vec<String> = run
                        .iter()
                        .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
                        .collect();
                    let _ = writeln!(
                        s,
                        r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.2" stroke-linejoin="round"{dash}/>"#,
                        pts.join(" "),
                        series.color
                    );
                }
                for &(x, y) in series.points.iter().filter(|p| p.1 > 0.0) {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}" stroke="white" stroke-width="0.8"/>"#,
                        self.px(x),
                        self.py(y),
                        series.color
                    );
                }
            }
        }
    }

    fn legend(&self, s: &mut String) {
        let width =
            16.0 + 7.5 * self.series.iter().map(|r| r.name.len()).max().unwrap_or(0) as f64 + 30.0;
        let height = 10.0 + 20.0 * self.series.len() as f64;
        let x = WIDTH - RIGHT - width - 10.0;
        let y = if self.legend_low {
            HEIGHT - BOTTOM - height - 10.0
        } else {
            TOP + 10.0
        };
        let _ = writeln!(
            s,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}" fill="white" fill-opacity="0.92" stroke="#bbb" rx="4"/>"##
        );
        for (i, series) in self.series.iter().enumerate() {
            let cy = y + 15.0 + 20.0 * i as f64;
            match series.style {
                Style::Bars { .. } => {
                    let _ = writeln!(
                        s,
                        r#"<rect x="{:.1}" y="{:.1}" width="22" height="10" fill="{}" fill-opacity="0.8"/>"#,
                        x + 10.0,
                        cy - 5.0,
                        series.color
                    );
                }
                Style::Line { dashed } => {
                    let dash = if dashed {
                        r#" stroke-dasharray="7 4""#
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        s,
                        r#"<line x1="{:.1}" x2="{:.1}" y1="{cy:.1}" y2="{cy:.1}" stroke="{}" stroke-width="2.2"{dash}/>"#,
                        x + 10.0,
                        x + 32.0,
                        series.color
                    );
                }
            }
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="13" fill="#222">{}</text>"##,
                x + 40.0,
                cy + 4.5,
                escape(&series.name)
            );
        }
    }
}

/// A real minus sign for negative exponents.
fn minus(k: i32) -> String {
    if k < 0 {
        format!("\u{2212}{}", -k)
    } else {
        k.to_string()
    }
}

fn tick_label(t: f64) -> String {
    let s = format!("{t:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
