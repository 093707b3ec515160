/* The live view's pages: HTML rendered here with inline CSS and JS only (no external
 * assets, so the page works offline and inside a cluster). The JS draws flame graphs as
 * SVG from GET /api/flamegraph and refreshes counters from GET /api/overview. */
#include "liveview.h"

#include <string.h>

#include "fg_config.h"
#include "fg_tap.h"

static const char page_css[] =
    "body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "header{background:#2d2a32;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}"
    "header a{color:#ffd9a0;text-decoration:none}header b{font-size:15px}"
    "main{padding:12px 16px}table{border-collapse:collapse;margin:8px 0 16px}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#eee}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".warn{color:#a40;font-weight:bold}.muted{color:#888}"
    "#fg{width:100%;display:block;background:#fff;border:1px solid #ddd}"
    "#fg g.fr rect{stroke:#fff;stroke-width:.5}#fg g.fr text{font:11px monospace;pointer-events:none}"
    "#fg g.fr.match rect{fill:#e040fb!important}#fg g.fr.above rect{fill:#ddd!important}"
    "#tip{position:fixed;display:none;background:#fffbe6;border:1px solid #aa8;padding:4px 8px;"
    "pointer-events:none;font:12px monospace;max-width:60em;z-index:9;white-space:pre-wrap}"
    ".bar{display:flex;gap:10px;align-items:center;margin:6px 0;flex-wrap:wrap}"
    "input,select,button{font:inherit}";

/* Shared by the flame graph and diff pages. A node is {name,value,self,children}; layout is
 * an icicle (root on top). Exposed on window.lv for the browser test. */
static const char page_js_common[] =
    "'use strict';\n"
    "function esc(s){return String(s).replace(/[&<>\"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;',"
    "'\"':'&quot;',\"'\":'&#39;'}[c]));}\n"
    "function fmt(v){return Number(v).toLocaleString('en-US');}\n"
    "function hue(name){let h=0;for(let i=0;i<name.length;i++)h=(h*31+name.charCodeAt(i))>>>0;"
    "return h;}\n"
    "function warm(name){const h=hue(name);return 'rgb('+(205+h%50)+','+(80+(h>>8)%130)+','+"
    "(40+(h>>16)%50)+')';}\n"
    "function link(root){(function w(n,p,d){n.parent=p;n.depth=d;(n.children||[]).forEach(c=>"
    "w(c,n,d+1));})(root,null,0);return root;}\n"
    "const RH=17;\n"
    "const lv={root:null,zoom:null,total:0,color:null,tipText:null,search:''};\n"
    "window.lv=lv;\n"
    "function draw(){const svg=document.getElementById('fg');if(!lv.root){svg.innerHTML='';"
    "return;}const W=svg.clientWidth||1200;const NS='http://www.w3.org/2000/svg';\n"
    " const z=lv.zoom||lv.root;let maxd=z.depth;const frag=document.createDocumentFragment();\n"
    " const anc=[];for(let a=z.parent;a;a=a.parent)anc.unshift(a);\n"
    " function box(n,x,w,row,above){const g=document.createElementNS(NS,'g');"
    "g.setAttribute('class','fr'+(above?' above':''));g.dataset.name=n.name;"
    "g.__node=n;const r=document.createElementNS(NS,'rect');r.setAttribute('x',x.toFixed(2));"
    "r.setAttribute('y',row*RH);r.setAttribute('width',Math.max(w-0.5,0.5).toFixed(2));"
    "r.setAttribute('height',RH-1);r.setAttribute('fill',lv.color(n));g.appendChild(r);"
    "if(w>30){const t=document.createElementNS(NS,'text');t.setAttribute('x',(x+3).toFixed(2));"
    "t.setAttribute('y',row*RH+12);const chars=Math.floor((w-6)/6.6);t.textContent="
    "n.name.length>chars?n.name.slice(0,Math.max(chars-2,0))+'..':n.name;g.appendChild(t);}"
    "frag.appendChild(g);}\n"
    " anc.forEach((a,i)=>box(a,0,W,i,true));const base=anc.length;\n"
    " (function lay(n,x,w,row){box(n,x,w,row,false);if(row>maxd)maxd=row;let cx=x;"
    "(n.children||[]).forEach(c=>{const cw=w*c.value/(n.value||1);if(cw>=0.5)lay(c,cx,cw,row+1);"
    "cx+=cw;});})(z,0,W,base);\n"
    " svg.innerHTML='';svg.appendChild(frag);svg.setAttribute('height',(maxd+2)*RH);"
    " applySearch();}\n"
    "function applySearch(){const q=lv.search;let re=null;if(q){try{re=new RegExp(q,'i');}catch(e)"
    "{re=null;}}let matched=0;const seen=new Set();\n"
    " document.querySelectorAll('#fg g.fr').forEach(g=>{const n=g.__node;const m=!!(re&&"
    "re.test(n.name));g.classList.toggle('match',m);});\n"
    " if(re&&lv.root)(function w(n){if(re.test(n.name)&&n!==lv.root){matched+=n.value;return;}"
    "(n.children||[]).forEach(w);})(lv.root);\n"
    " const mi=document.getElementById('matchinfo');if(mi)mi.textContent=re?('matched '+"
    "fmt(matched)+' ('+(100*matched/(lv.total||1)).toFixed(2)+'% of all)'):'';}\n"
    "function setupFlame(){const svg=document.getElementById('fg');const tip="
    "document.getElementById('tip');\n"
    " svg.addEventListener('mousemove',e=>{const g=e.target.closest('g.fr');if(!g){tip.style."
    "display='none';return;}const n=g.__node;tip.textContent=lv.tipText(n);tip.style.display="
    "'block';tip.style.left=Math.min(e.clientX+12,window.innerWidth-320)+'px';tip.style.top="
    "(e.clientY+14)+'px';});\n"
    " svg.addEventListener('mouseleave',()=>{tip.style.display='none';});\n"
    " svg.addEventListener('click',e=>{const g=e.target.closest('g.fr');if(!g)return;const n="
    "g.__node;lv.zoom=(n===lv.root)?null:n;draw();const zi=document.getElementById('zoominfo');"
    "if(zi)zi.textContent=lv.zoom?('zoomed into '+lv.zoom.name):'';});\n"
    " const s=document.getElementById('search');s.addEventListener('input',()=>{lv.search="
    "s.value;applySearch();});\n"
    " document.getElementById('reset').addEventListener('click',()=>{lv.zoom=null;s.value='';"
    "lv.search='';draw();document.getElementById('zoominfo').textContent='';});\n"
    " window.addEventListener('resize',draw);}\n"
    /* zoom survives a refresh when the same path of names still exists */
    "function pathOf(n){const p=[];for(;n&&n.parent;n=n.parent)p.unshift(n.name);return p;}\n"
    "function findPath(root,p){let n=root;for(const name of p){n=(n.children||[]).find(c=>"
    "c.name===name);if(!n)return null;}return n;}\n"
    "function qs(k){return new URLSearchParams(location.search).get(k)||'';}\n"
    "async function getJSON(u){const r=await fetch(u,{cache:'no-store'});if(!r.ok)throw new "
    "Error(u+': '+r.status+' '+(await r.text()));return r.json();}\n"
    "async function fillServices(selS,selT,svc,type){const d=await getJSON('/api/services');"
    "selS.innerHTML='';d.services.forEach(s=>{const o=document.createElement('option');o.value="
    "s.name;o.textContent=s.name;selS.appendChild(o);});if(svc)selS.value=svc;\n"
    " function types(){const s=d.services.find(x=>x.name===selS.value);selT.innerHTML='';"
    "(s?s.types:[]).forEach(t=>{const o=document.createElement('option');o.value=t.type;"
    "o.textContent=t.type;selT.appendChild(o);});}types();if(type)selT.value=type;"
    "selS.addEventListener('change',types);return d;}\n";

static const char page_js_flame[] =
    "const svc=qs('service'),typ=qs('type');const refresh=qs('refresh')!=='0';\n"
    "lv.color=n=>n.parent?warm(n.name):'#c8c8c8';\n"
    "lv.tipText=n=>n.name+'\\nvalue '+fmt(n.value)+' ('+(100*n.value/(lv.total||1)).toFixed(2)+"
    "'% of all)'+(lv.zoom&&lv.zoom!==n?'\\n'+(100*n.value/(lv.zoom.value||1)).toFixed(2)+"
    "'% of '+lv.zoom.name:'')+'\\nself '+fmt(n.self);\n"
    "async function load(){try{const u='/api/flamegraph?service='+encodeURIComponent(svc)+"
    "'&type='+encodeURIComponent(typ)+(qs('from')?'&from='+qs('from'):'')+(qs('to')?'&to='+"
    "qs('to'):'');const d=await getJSON(u);const zp=lv.zoom?pathOf(lv.zoom):null;lv.root="
    "link(d.root);lv.total=d.total;lv.zoom=zp?findPath(lv.root,zp):null;"
    "document.getElementById('total').textContent=fmt(d.total);"
    "document.getElementById('dropped').textContent=d.dropped_stacks?('max_stacks reached: '+"
    "fmt(d.dropped_stacks)+' smallest stacks (value '+fmt(d.dropped_value)+') were dropped'):'';"
    "document.getElementById('status').textContent='updated '+new Date().toLocaleTimeString();"
    "draw();document.body.dataset.loaded='1';}catch(e){document.getElementById('status')."
    "textContent=String(e);}}\n"
    "setupFlame();fillServices(document.getElementById('svc'),document.getElementById('typ'),svc,"
    "typ).then(d=>{if(!svc&&d.services.length){const s=d.services[0];location.replace("
    "'/flamegraph?service='+encodeURIComponent(s.name)+'&type='+encodeURIComponent("
    "s.types[0].type));}}).catch(()=>{});\n"
    "if(svc){load();if(refresh)setInterval(load,5000);}else{document.getElementById('status')."
    "textContent='nothing in the window yet';}\n";

static const char page_js_diff[] =
    "lv.color=n=>{if(!n.parent)return '#c8c8c8';const d=n.sb-n.sa;const m=Math.min(1,"
    "Math.abs(d)/(lv.maxd||1));const k=Math.round(255-170*m);return d>0?'rgb(255,'+k+','+k+')':"
    "d<0?'rgb('+k+','+k+',255)':'rgb(235,235,235)';};\n"
    "lv.tipText=n=>n.name+'\\nA '+fmt(n.va)+' ('+(100*n.sa).toFixed(2)+'%)\\nB '+fmt(n.vb)+' ('+"
    "(100*n.sb).toFixed(2)+'%)\\nchange '+(n.sb>=n.sa?'+':'')+(100*(n.sb-n.sa)).toFixed(2)+"
    "' points of share';\n"
    /* merged tree: value = mean of the two shares (scaled), so frames of either side show */
    "function merge(a,b){const ta=a?a.value:0,tb=b?b.value:0;lv.maxd=0;\n"
    " function m(x,y,name){const va=x?x.value:0,vb=y?y.value:0;const sa=va/(ta||1),sb=vb/(tb||1);"
    "lv.maxd=Math.max(lv.maxd,Math.abs(sb-sa));const n={name,va,vb,sa,sb,value:(sa+sb)/2*1e9,"
    "self:0,children:[]};const names=new Map();((x&&x.children)||[]).forEach(c=>names.set(c.name,"
    "[c,null]));((y&&y.children)||[]).forEach(c=>{const e=names.get(c.name);if(e)e[1]=c;else "
    "names.set(c.name,[null,c]);});[...names.keys()].sort().forEach(k=>{const e=names.get(k);"
    "n.children.push(m(e[0],e[1],k));});return n;}\n"
    " return m(a,b,'all');}\n"
    "function side(p){const q=new URLSearchParams();q.set('service',document.getElementById(p+"
    "'svc').value);q.set('type',document.getElementById(p+'typ').value);const f=document."
    "getElementById(p+'from').value,t=document.getElementById(p+'to').value;if(f)q.set('from',f);"
    "if(t)q.set('to',t);return q;}\n"
    "async function load(){try{const qa=side('a'),qb=side('b');const [a,b]=await Promise.all("
    "[getJSON('/api/flamegraph?'+qa),getJSON('/api/flamegraph?'+qb)]);lv.root=link(merge(a.root,"
    "b.root));lv.total=lv.root.value;lv.zoom=null;document.getElementById('status').textContent="
    "'A total '+fmt(a.total)+', B total '+fmt(b.total);draw();document.body.dataset.loaded='1';}"
    "catch(e){document.getElementById('status').textContent=String(e);}}\n"
    "setupFlame();Promise.all(['a','b'].map(p=>fillServices(document.getElementById(p+'svc'),"
    "document.getElementById(p+'typ'),qs(p+'_service'),qs(p+'_type')))).then(()=>{['a','b']."
    "forEach(p=>{document.getElementById(p+'from').value=qs(p+'_from');document.getElementById("
    "p+'to').value=qs(p+'_to');});if(qs('a_service')||qs('b_service'))load();}).catch(e=>{"
    "document.getElementById('status').textContent=String(e);});"
    "document.getElementById('go').addEventListener('click',load);\n";

static const char page_js_overview[] =
    "async function tick(){try{const [o,s]=await Promise.all([getJSON('/api/overview'),"
    "getJSON('/api/services')]);\n"
    " o.pipelines.forEach(p=>{const r=document.querySelector('tr[data-pipeline=\"'+CSS.escape("
    "p.name)+'\"]');if(r){r.querySelector('.b').textContent=fmt(p.batches);r.querySelector('.s')."
    "textContent=fmt(p.samples);r.classList.toggle('muted',!p.in_view);r.title=p.in_view?'':"
    "'not in the flame graphs (liveview pipelines option)';}});\n"
    " document.getElementById('tap').textContent='tap queue '+o.tap.queue_fill+'/'+"
    "o.tap.queue_size+', dropped '+fmt(o.tap.dropped_batches)+' batches ('+fmt(o.tap."
    "dropped_samples)+' samples); aggregated '+fmt(o.aggregate.batches)+' batches, '+fmt(o."
    "aggregate.samples)+' samples; '+fmt(o.aggregate.stacks)+' stacks, '+fmt(o.aggregate."
    "frames)+' frame names';\n"
    " let eh='';(o.exporters||[]).forEach(e=>{eh+='<tr><td>'+esc(e.id)+'</td>'+('sent_batches' "
    "in e?['sent_batches','sent_samples','failed_samples','refused_samples','retries'].map(k=>"
    "'<td class=n>'+fmt(e[k])+'</td>').join('')+'<td class=n>'+fmt(e.queue)+' / '+fmt("
    "e.queue_capacity)+'</td>':'<td colspan=6 class=muted>no sending queue</td>')+'</tr>';});"
    "document.getElementById('exporters').innerHTML=eh;\n"
    " let h='';s.services.forEach(sv=>sv.types.forEach(t=>{const u='/flamegraph?service='+"
    "encodeURIComponent(sv.name)+'&type='+encodeURIComponent(t.type);h+='<tr><td>'+esc(sv.name)+"
    "'</td><td><a href=\"'+esc(u)+'\">'+esc(t.type)+'</a></td><td class=n>'+fmt(t.value)+"
    "'</td><td class=n>'+fmt(t.samples)+'</td><td class=n>'+fmt(t.stacks)+'</td><td'+"
    "(t.dropped_stacks?' class=warn':'')+'>'+(t.dropped_stacks?fmt(t.dropped_stacks)+"
    "' dropped':'')+'</td></tr>';}));document.getElementById('services').innerHTML=h||"
    "'<tr><td colspan=6 class=muted>nothing in the window yet</td></tr>';\n"
    " const w=[];if(s.evicted_stacks)w.push('max_stacks ('+fmt(s.max_stacks)+') reached: '+"
    "fmt(s.evicted_stacks)+' smallest stacks dropped');if(s.refused_series_samples)w.push("
    "'max_services ('+fmt(s.max_services)+') reached: '+fmt(s.refused_series_samples)+"
    "' samples of further services not shown');document.getElementById('limits').textContent="
    "w.join('; ');document.getElementById('status').textContent='updated '+new Date()."
    "toLocaleTimeString();document.body.dataset.loaded='1';}catch(e){document.getElementById("
    "'status').textContent=String(e);}}\n"
    "tick();setInterval(tick,2000);\n";

static int html(struct fg_buf *out, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        switch (*s) {
        case '&': rc = fg_buf_append_str(out, "&amp;"); break;
        case '<': rc = fg_buf_append_str(out, "&lt;"); break;
        case '>': rc = fg_buf_append_str(out, "&gt;"); break;
        case '"': rc = fg_buf_append_str(out, "&quot;"); break;
        case '\'': rc = fg_buf_append_str(out, "&#39;"); break;
        default: rc = fg_buf_append(out, s, 1);
        }
    }
    return rc;
}

static int head(struct fg_buf *out, const char *title, const char *id)
{
    int rc = fg_buf_append_str(out, "<!doctype html><html><head><meta charset=utf-8><title>");
    rc = rc ? rc : html(out, title);
    rc = rc ? rc : fg_buf_append_str(out, " — flamegate live view</title><style>");
    rc = rc ? rc : fg_buf_append_str(out, page_css);
    rc = rc ? rc : fg_buf_append_str(out, "</style></head><body><header><b>flamegate</b>"
                                          "<a href=\"/\">overview</a><a href=\"/flamegraph\">"
                                          "flame graph</a><a href=\"/diff\">diff</a><span "
                                          "class=muted>");
    rc = rc ? rc : html(out, id);
    return rc ? rc : fg_buf_append_str(out, "</span></header><main>");
}

static int tail(struct fg_buf *out, const char *js)
{
    int rc = fg_buf_append_str(out, "</main><div id=tip></div><script>");
    rc = rc ? rc : fg_buf_append_str(out, page_js_common);
    rc = rc ? rc : fg_buf_append_str(out, js);
    return rc ? rc : fg_buf_append_str(out, "</script></body></html>");
}

struct rows_ctx {
    struct fg_buf *out;
    int rc;
};

static int html_list(struct fg_buf *out, char **items, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = i ? fg_buf_append_str(out, ", ") : 0;
        rc = rc ? rc : html(out, items[i]);
    }
    return rc;
}

/* The pipeline table rows, from the running config (counters filled in by the JS). */
static void pipeline_rows(void *arg, const struct fg_config *cfg)
{
    struct rows_ctx *r = arg;
    int rc = 0;
    for (size_t p = 0; cfg && p < cfg->n_pipelines && !rc; p++) {
        const struct fg_config_pipeline *pl = &cfg->pipelines[p];
        rc = fg_buf_append_str(r->out, "<tr data-pipeline=\"");
        rc = rc ? rc : html(r->out, pl->name);
        rc = rc ? rc : fg_buf_append_str(r->out, "\"><td>");
        rc = rc ? rc : html(r->out, pl->name);
        rc = rc ? rc : fg_buf_append_str(r->out, "</td><td>");
        rc = rc ? rc : html_list(r->out, pl->receivers, pl->n_receivers);
        rc = rc ? rc : fg_buf_append_str(r->out, "</td><td>");
        rc = rc ? rc : html_list(r->out, pl->processors, pl->n_processors);
        rc = rc ? rc : fg_buf_append_str(r->out, "</td><td>");
        rc = rc ? rc : html_list(r->out, pl->exporters, pl->n_exporters);
        rc = rc ? rc : fg_buf_append_str(r->out, "</td><td class=\"n b\">…</td>"
                                                 "<td class=\"n s\">…</td></tr>");
    }
    if (!cfg && !rc)
        rc = fg_buf_append_str(r->out, "<tr><td colspan=6 class=muted>no running service "
                                       "published its config</td></tr>");
    r->rc = rc;
}

int fg_lv_page_overview(struct fg_component *c, struct fg_buf *out)
{
    const struct liveview_config *cfg = fg_lv_config(c);
    int rc = head(out, "overview", c->id);
    rc = rc ? rc : fg_buf_printf(out, "<h3>Pipelines</h3><p class=muted>batches and samples "
                                      "each pipeline handed to its exporters (after its "
                                      "processors), counted at the tap since start; window "
                                      "%.0f s</p><table><tr><th>pipeline</th><th>receivers"
                                      "</th><th>processors</th><th>exporters</th><th>batches"
                                      "</th><th>samples</th></tr>",
                                 (double)cfg->window_ns / 1e9);
    if (!rc) {
        struct rows_ctx r = {out, 0};
        fg_tap_with_config(pipeline_rows, &r);
        rc = r.rc;
    }
    rc = rc ? rc : fg_buf_append_str(out, "</table><h3>Exporters</h3><p class=muted>from "
                                          "each exporter's sending queue since start: "
                                          "refused = not taken because the queue was full or "
                                          "stopping (the sender got a retryable error); "
                                          "failed = dropped after retries or a permanent "
                                          "error. Exporters without a sending queue (file, "
                                          "debug) have no counters here.</p><table><tr><th>"
                                          "exporter</th><th>sent batches</th><th>sent samples"
                                          "</th><th>failed samples</th><th>refused samples"
                                          "</th><th>retries</th><th>queue fill</th></tr>"
                                          "<tbody id=exporters></tbody></table>"
                                          "<p id=tap class=muted></p><p id=limits "
                                          "class=warn></p><h3>Services in the window</h3>"
                                          "<table><tr><th>service</th><th>sample type</th>"
                                          "<th>value</th><th>samples</th><th>stacks</th>"
                                          "<th></th></tr><tbody id=services></tbody></table>"
                                          "<p id=status class=muted></p>");
    return rc ? rc : tail(out, page_js_overview);
}

static int flame_controls(struct fg_buf *out)
{
    return fg_buf_append_str(out, "<div class=bar><input id=search placeholder=\"search "
                                  "(regex)\" size=30><span id=matchinfo></span><button "
                                  "id=reset>reset zoom</button><span id=zoominfo></span></div>"
                                  "<svg id=fg></svg><p id=status class=muted></p>");
}

int fg_lv_page_flamegraph(struct fg_component *c, const char *query, struct fg_buf *out)
{
    char service[512] = "", type[512] = "";
    fg_lv_query_get(query, "service", service, sizeof(service));
    fg_lv_query_get(query, "type", type, sizeof(type));
    int rc = head(out, *service ? service : "flame graph", c->id);
    rc = rc ? rc : fg_buf_append_str(out, "<form class=bar method=get action=/flamegraph>"
                                          "<select id=svc name=service></select><select id=typ "
                                          "name=type></select><button>show</button></form><h3>");
    rc = rc ? rc : html(out, *service ? service : "(choose a service)");
    rc = rc ? rc : fg_buf_append_str(out, " — ");
    rc = rc ? rc : html(out, type);
    rc = rc ? rc : fg_buf_append_str(out, "</h3><div class=bar>total <b id=total>…</b>"
                                          "<span id=dropped class=warn></span></div>");
    rc = rc ? rc : flame_controls(out);
    return rc ? rc : tail(out, page_js_flame);
}

int fg_lv_page_diff(struct fg_component *c, const char *query, struct fg_buf *out)
{
    int rc = head(out, "diff", c->id);
    static const char *const sides[] = {"a", "b"};
    rc = rc ? rc : fg_buf_append_str(out, "<h3>Differential flame graph</h3><p class=muted>"
                                          "width: mean share of A and B; red: larger share "
                                          "in B, blue: smaller. Ranges are seconds ago "
                                          "(from older, to newer; empty = whole window).</p>");
    for (size_t i = 0; i < 2 && !rc; i++)
        rc = fg_buf_printf(out,
                           "<div class=bar><b>%s</b><select id=%ssvc></select><select "
                           "id=%styp></select>from <input id=%sfrom size=5> to <input id=%sto "
                           "size=5> s ago</div>",
                           i ? "B" : "A", sides[i], sides[i], sides[i], sides[i]);
    rc = rc ? rc : fg_buf_append_str(out, "<div class=bar><button id=go>compare</button></div>");
    rc = rc ? rc : flame_controls(out);
    return rc ? rc : tail(out, page_js_diff);
}
